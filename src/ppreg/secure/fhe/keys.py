"""CKKS keys: party2 owns the secret key; party1 gets a public context only.

:class:`KeyOwner` (party2) makes the TenSEAL context, encrypts its operand and holds
the secret key (also in coefficient form, for its decryption shares). :class:`PublicKeys`
(party1) is built from the bytes party2 sends — a TenSEAL context serialised *without*
its secret (and relinearisation) key, plus, for fhe1 only, the Galois keys of the
rotations it needs — and refuses a context that holds a secret key or does not match
the announced parameters.
"""

from __future__ import annotations

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from ppreg.errors import ProtocolError
from ppreg.secure.fhe.params import CKKSParameters
from ppreg.secure.fhe.sealbytes import SEAL_ERRORS, SealIO, ciphertext_range, plaintext_words

SLOT_GENERATOR = 3  # SEAL maps slot k to the root ζ^(3^k mod 2N); a test pins this


def galois_element(step: int, degree: int) -> int:
    """Galois element of a left rotation by ``step`` slots."""
    return pow(SLOT_GENERATOR, step, 2 * degree)


class _Ring:
    """What both parties derive from a SEAL context: encoder, evaluator, data level, I/O."""

    def _attach(self, seal_context) -> None:
        self.seal_context = seal_context
        self.encoder = sealapi.CKKSEncoder(seal_context)
        self.evaluator = sealapi.Evaluator(seal_context)
        self.io = SealIO(seal_context)
        data = seal_context.first_context_data()
        self.data_parms_id = seal_context.first_parms_id()
        self.primes = [modulus.value() for modulus in data.parms().coeff_modulus()]
        self.degree = data.parms().poly_modulus_degree()
        self.modulus = int(np.prod([int(p) for p in self.primes], dtype=object))

    def encode(self, values: np.ndarray, scale: float):
        """A plaintext of one slot vector (length ≤ N/2) at the data level."""
        plain = sealapi.Plaintext()
        self.encoder.encode(values.tolist(), self.data_parms_id, scale, plain)
        return plain

    def close(self) -> None:
        self.io.close()


class KeyOwner(_Ring):
    """Party2's keys. The secret key never leaves this object.

    Parameters
    ----------
    parameters : CKKSParameters
    rotation_steps : sequence of int
        Slot rotations party1 needs (fhe1); their Galois keys are made and shared.
    """

    def __init__(self, parameters: CKKSParameters, rotation_steps=()) -> None:
        self.parameters = parameters
        self._context = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=parameters.poly_modulus_degree,
            coeff_mod_bit_sizes=list(parameters.coeff_mod_bit_sizes),
        )
        self._attach(self._context.seal_context().data)
        secret = self._context.secret_key().data
        self._encryptor = sealapi.Encryptor(self.seal_context, secret)
        self._decryptor = sealapi.Decryptor(self.seal_context, secret)
        self.rotation_steps = tuple(rotation_steps)
        self._galois_blob = b""
        if rotation_steps:
            generator = sealapi.KeyGenerator(self.seal_context, secret)
            elements = [galois_element(step, self.degree) for step in rotation_steps]
            self._galois_blob = self.io.dumps(generator.create_galois_keys(elements))

    def public_context(self) -> bytes:
        """The TenSEAL context with parameters and public key only (no secret, no relin keys)."""
        return self._context.serialize(
            save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
        )

    def galois_keys(self) -> bytes:
        """Serialised Galois keys of the requested rotations (empty when none)."""
        return self._galois_blob

    def encrypt(self, values: np.ndarray, scale: float) -> bytes:
        """Symmetric (seeded, half-size) encryption of one slot vector, serialised."""
        return self.io.dumps(self._encryptor.encrypt_symmetric(self.encode(values, scale)))

    def times_secret(self, c1: np.ndarray) -> np.ndarray:
        """c1·s in Z_Q[X]/(X^N+1), coefficient form, shape (L, N) uint64 (c1 likewise).

        Through SEAL's NTT: (0, c1) decrypts to c1·s; the NTT-form result goes back to
        coefficients as the first polynomial of a carrier ciphertext.
        """
        n_primes, degree = c1.shape
        carrier = self.io.build_ciphertext(np.stack([np.zeros_like(c1), c1]), self.data_parms_id, False, 1.0)
        self.evaluator.transform_to_ntt_inplace(carrier)
        product = sealapi.Plaintext()
        self._decryptor.decrypt(carrier, product)
        words = plaintext_words(product)[: n_primes * degree].reshape(n_primes, degree)
        # the second polynomial only keeps SEAL from calling the carrier transparent
        back = self.io.build_ciphertext(np.stack([words, np.ones_like(words)]), self.data_parms_id, True, 1.0)
        self.evaluator.transform_from_ntt_inplace(back)
        return ciphertext_range(back, 0, n_primes * degree).reshape(n_primes, degree)

    def secret_coefficients(self) -> np.ndarray:
        """The secret key s as coefficients in {−1, 0, 1}, shape (N,), int64.

        SEAL keeps s in NTT form; its residues for the data-level primes go through an
        inverse NTT (as the first polynomial of a carrier ciphertext).
        """
        n_primes, degree = len(self.primes), self.degree
        words = plaintext_words(self._context.secret_key().data.data())[: n_primes * degree].reshape(n_primes, degree)
        carrier = self.io.build_ciphertext(np.stack([words, np.ones_like(words)]), self.data_parms_id, True, 1.0)
        self.evaluator.transform_from_ntt_inplace(carrier)
        residues = ciphertext_range(carrier, 0, n_primes * degree).reshape(n_primes, degree).astype(object)
        signed = np.array([[int(r) - p if r > p // 2 else int(r) for r in row] for row, p in zip(residues, self.primes)])
        if np.any(np.abs(signed) > 1) or np.any(signed != signed[0]):
            raise RuntimeError("the secret key is not ternary; ppreg expects SEAL's default key distribution")
        return signed[0].astype(np.int64)


class PublicKeys(_Ring):
    """Party1's view of party2's keys: public key and (fhe1) Galois keys.

    Parameters
    ----------
    parameters : CKKSParameters
        As announced by party2; the context must match them.
    context : bytes
        Serialised public TenSEAL context.
    galois : bytes
        Serialised Galois keys, or empty.

    Raises
    ------
    ProtocolError
        If the context cannot be read, holds a secret key, lacks a public key or does not
        match ``parameters``.
    """

    def __init__(self, parameters: CKKSParameters, context: bytes, galois: bytes = b"") -> None:
        self.parameters = parameters
        try:
            public = ts.context_from(bytes(context))
        except SEAL_ERRORS as error:
            raise ProtocolError(f"party2 sent an unreadable CKKS context: {error}") from None
        if public.has_secret_key() or public.is_private():
            raise ProtocolError("party2's CKKS context holds its secret key; refusing it")
        if not public.has_public_key():
            raise ProtocolError("party2's CKKS context has no public key")
        self._attach(public.seal_context().data)
        self._check_parameters()
        self.encryptor = sealapi.Encryptor(self.seal_context, public.public_key().data)
        self.galois = self.io.load_galois_keys(bytes(galois)) if galois else None

    def _check_parameters(self) -> None:
        key_level = self.seal_context.key_context_data().parms()
        bits = tuple(modulus.bit_count() for modulus in key_level.coeff_modulus())
        if self.degree != self.parameters.poly_modulus_degree or bits != self.parameters.coeff_mod_bit_sizes:
            raise ProtocolError(
                f"party2's CKKS context (N={self.degree}, moduli {list(bits)}) does not match its announced "
                f"parameters (N={self.parameters.poly_modulus_degree}, moduli {list(self.parameters.coeff_mod_bit_sizes)})"
            )

    def load_ciphertext(self, blob: bytes, scale: float, what: str):
        """A ciphertext of party2's at the data level and ``scale``; anything else is refused."""
        ciphertext = self.io.load_ciphertext(bytes(blob), what)
        check_ciphertext(ciphertext, self.data_parms_id, scale, what)
        return ciphertext


def check_ciphertext(ciphertext, parms_id, scale: float, what: str) -> None:
    """Refuse a ciphertext of the wrong level, size, representation or scale."""
    if (
        list(ciphertext.parms_id()) != list(parms_id)
        or ciphertext.size() != 2
        or not ciphertext.is_ntt_form()
        or not np.isclose(ciphertext.scale, scale, rtol=1e-9)
    ):
        raise ProtocolError(f"{what} does not match the agreed CKKS parameters (level, size or scale)")
