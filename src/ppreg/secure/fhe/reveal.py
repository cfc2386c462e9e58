"""Returning an encrypted result to party1 without leaking to either party.

party1 holds a ciphertext [m] whose decryption m (a polynomial in Z_Q[X]/(X^N+1)) carries
the result in a few known coefficients. It

1. adds a fresh public-key encryption of zero, so the ciphertext no longer depends on
   how it was computed from party2's ciphertexts and party1's features;
2. adds a polynomial u drawn uniformly from Z_Q[X]/(X^N+1) (a plaintext-domain mask),
   so the whole decryption m + e + u is uniform: party2 learns nothing about m (hence
   about F) nor about the error e, which depends on F;

party2 decrypts, reads only the agreed coefficients, adds integer Gaussian noise of std
σ ("noise flooding", σ = 2^κ × the bound on e) and returns them; party1 subtracts u and
keeps m + e + noise. Without the flooding, these exact values would be linear equations
in party2's secret key (Li & Micciancio, Eurocrypt 2021). docs/fhe.md gives the bounds.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
import tenseal.sealapi as sealapi

from ppreg.errors import ProtocolError
from ppreg.secure.fhe.keys import SLOT_GENERATOR, KeyOwner, PublicKeys
from ppreg.secure.fhe.sealbytes import SEAL_ERRORS, ciphertext_words

NOISE_FINE_BITS = 40  # flooding noise keeps full integer resolution below this many bits


def secure_generator() -> np.random.Generator:
    """A generator seeded from the OS CSPRNG, for masks and noise (never for reproducibility)."""
    return np.random.Generator(np.random.Philox(secrets.randbits(128)))


def coefficient_indices(positions: np.ndarray, n_primes: int, degree: int) -> np.ndarray:
    """Flat word indices of coefficients ``positions`` of polynomial 0, prime by prime."""
    return (np.arange(n_primes)[:, None] * degree + np.asarray(positions)[None, :]).ravel()


def _coefficients_of(ring, polys_c0: np.ndarray, parms_id, scale: float, positions: np.ndarray) -> np.ndarray:
    """Coefficient-domain residues at ``positions`` of an NTT-form polynomial, shape (n_pos, L).

    SEAL converts only ciphertexts out of NTT form, and refuses ones whose second
    polynomial is zero, so the polynomial rides as c0 next to the constant 1.
    """
    n_primes, degree = polys_c0.shape
    carrier = ring.io.build_ciphertext(np.stack([polys_c0, np.ones_like(polys_c0)]), parms_id, True, scale)
    ring.evaluator.transform_from_ntt_inplace(carrier)
    words = ciphertext_words(carrier, coefficient_indices(positions, n_primes, degree))
    return words.reshape(n_primes, len(positions)).T


class ResultMasker:
    """Party1's side: re-randomise and mask a result, later unmask the revealed coefficients."""

    def __init__(self, keys: PublicKeys) -> None:
        self.keys = keys
        self._rng = secure_generator()

    def seal(self, result, positions: np.ndarray) -> tuple[bytes, np.ndarray]:
        """Re-randomise and mask ``result`` in place.

        Parameters
        ----------
        result : Ciphertext
            At the data level; modified in place.
        positions : ndarray of int, shape (n_pos,)
            Coefficients party2 will reveal.

        Returns
        -------
        blob : bytes
            The masked ciphertext, serialised.
        mask : ndarray of uint64, shape (n_pos, L)
            Residues of the mask u at ``positions``; needed by :meth:`open`.
        """
        keys, parms_id, scale = self.keys, result.parms_id(), result.scale
        zero = sealapi.Ciphertext()
        keys.encryptor.encrypt_zero(parms_id, zero)
        zero.scale = scale
        keys.evaluator.add_inplace(result, zero)
        # uniform in the NTT domain is uniform in the coefficient domain (a bijection mod each prime)
        mask_ntt = np.stack([self._rng.integers(0, prime, size=keys.degree, dtype=np.uint64) for prime in keys.primes])
        masker = keys.io.build_ciphertext(np.stack([mask_ntt, np.zeros_like(mask_ntt)]), parms_id, True, scale)
        keys.evaluator.add_inplace(result, masker)
        return keys.io.dumps(result), _coefficients_of(keys, mask_ntt, parms_id, scale, positions)

    def open(self, residues: np.ndarray, mask: np.ndarray) -> list[int]:
        """Revealed residues minus the mask, as centred integers in (−Q/2, Q/2]."""
        residues = np.asarray(residues)
        if residues.shape != mask.shape or residues.dtype != np.uint64:
            raise ProtocolError(f"party2 revealed residues of shape {residues.shape}, expected {mask.shape} uint64")
        primes = self.keys.primes
        if np.any(residues >= np.asarray(primes, dtype=np.uint64)[None, :]):
            raise ProtocolError("party2 revealed residues outside their moduli")
        unmasked = [[(int(r) - int(u)) % p for r, u, p in zip(row, mask_row, primes)] for row, mask_row in zip(residues, mask)]
        return crt_centered(unmasked, primes)


def decrypted_coefficients(keys: KeyOwner, ciphertext, positions: np.ndarray) -> np.ndarray:
    """Party2's side: residues (n_pos, L) of the decryption at ``positions`` (still masked)."""
    words = keys.decrypt_words(ciphertext).reshape(len(keys.primes), keys.degree)
    try:
        return _coefficients_of(keys, words, ciphertext.parms_id(), ciphertext.scale, positions)
    except SEAL_ERRORS as error:
        raise ProtocolError(f"cannot read party1's decrypted result: {error}") from None


def add_noise(residues: np.ndarray, noise: list[int], primes) -> np.ndarray:
    """(residues + noise) mod each prime; ``noise`` holds one integer per row."""
    return np.array(
        [[(int(value) + eta) % int(p) for value, p in zip(row, primes)] for row, eta in zip(residues, noise)],
        dtype=np.uint64,
    ).reshape(residues.shape)


def flood_noise(sigma: float, size: int, rng: np.random.Generator) -> list[int]:
    """Integers ≈ N(0, σ²) with full resolution down to 1.

    A float64 Gaussian times σ ≫ 2^53 would be a multiple of a large power of two and
    leave the low bits of the hidden error visible, so a uniform integer fills the part
    below σ·2^-40 (its width is far below σ, so the shape stays Gaussian).
    """
    granule = 1 << max(0, math.ceil(math.log2(max(sigma, 1.0))) - NOISE_FINE_BITS)
    coarse = np.rint(rng.standard_normal(size) * (sigma / granule)).astype(np.int64)
    fine = rng.integers(0, granule, size=size, dtype=np.uint64)
    return [int(c) * granule + int(f) for c, f in zip(coarse, fine)]


def crt_centered(residues, primes) -> list[int]:
    """Integers in (−Q/2, Q/2] from residues modulo ``primes`` (rows of ``residues``)."""
    primes = [int(p) for p in primes]
    modulus = math.prod(primes)
    basis = [(modulus // p) * pow(modulus // p, -1, p) for p in primes]
    values = [sum(int(r) * b for r, b in zip(row, basis)) % modulus for row in residues]
    return [v - modulus if v > modulus // 2 else v for v in values]


def slot_class_sums(coefficients, period: int, degree: int, scale: float) -> np.ndarray:
    """Σ_{k ≡ j (mod period)} z_k for j < period, from 2·period coefficients.

    The trace onto the subring fixed by rotations of ``period`` slots keeps exactly the
    coefficients at multiples of N/(2·period) (times N/(2·period)), so these sums are a
    small DFT of those coefficients — no rotation needed.

    Parameters
    ----------
    coefficients : sequence of int, length 2·period
        Coefficients t·N/(2·period), t < 2·period, of the decrypted polynomial.
    period : int
        Power of two dividing N/2.
    degree : int
        N.
    scale : float
        The plaintext scale Δ.

    Returns
    -------
    ndarray, shape (period,)
    """
    order = 4 * period
    exponents = np.array([pow(SLOT_GENERATOR, j, order) for j in range(period)])
    angles = 2.0 * np.pi * np.outer(exponents, np.arange(2 * period)) / order
    values = np.array([c / scale for c in coefficients], dtype=np.float64)
    return (degree // (2 * period)) * (np.cos(angles) @ values)
