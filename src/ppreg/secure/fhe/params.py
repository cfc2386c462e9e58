"""CKKS parameters of the fhe engines, their security check and the noise budget.

Both engines reveal a handful of *coefficients* of the decrypted polynomial (see
:mod:`ppreg.secure.fhe.reveal`), so what matters is that those coefficients, plus the
flooding noise, stay below half the final ciphertext modulus Q, and that the flooding
noise is 2^κ times larger than the CKKS error it hides. docs/fhe.md derives the bounds
used here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ppreg.errors import ConfigError, InputError, ProtocolError

# Largest log2(Q·P) for 128-bit classical security with a ternary secret and error
# std 3.2, HomomorphicEncryption.org security standard (2018), Table 1.
HE_STANDARD_MAX_BITS_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}

FRESH_ERROR_STD = 3.2  # SEAL's encryption error std (the HE standard's value)
ERROR_TAIL = 8.0  # error bound = ERROR_TAIL · std: a Gaussian exceeds it with prob. < 1e-15
# Bound on every error term other than party2's encryption error times F, per summed
# ciphertext and before amplification (party1's re-randomising encryption of zero,
# key switching in fhe1). Measured: the encryption of zero ≤ 2^6, a whole fhe1
# rotate-and-add of a fresh ciphertext ≤ 2^19 even after amplification
# (tests/test_fhe_engines.py::test_error_terms_stay_within_the_flooding_bound).
OTHER_ERROR_BOUND = 2.0**24
MAGNITUDE_MARGIN = 4.0  # revealed coefficients must stay below Q / (2·margin)


@dataclass(frozen=True)
class CKKSParameters:
    """Encryption parameters chosen by party2 and sent to party1 with the public context.

    Parameters
    ----------
    poly_modulus_degree : int, default 8192
        Ring degree N; a ciphertext has N/2 slots.
    coeff_mod_bit_sizes : tuple of int, default (60, 60, 60)
        Prime sizes; the last prime is SEAL's special (key-switching) prime, the others
        form the 120-bit ciphertext modulus Q. Their sum must respect the HE standard.
    operand_scale_bits : int, default 60
        log2 of the scale Δ_G at which party2 encodes G.
    feature_scale_bits : int, default 30
        log2 of the scale Δ_F at which party1 encodes F.
    flood_bits : int, default 32
        κ: the flooding noise std is 2^κ times the bound on the CKKS error it hides.
    feature_bound : float, default 1.0
        Public bound on |F| (normalised intensities); party1 refuses larger features.
    """

    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 60, 60)
    operand_scale_bits: int = 60
    feature_scale_bits: int = 30
    flood_bits: int = 32
    feature_bound: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "coeff_mod_bit_sizes", tuple(int(b) for b in self.coeff_mod_bit_sizes))
        limit = HE_STANDARD_MAX_BITS_128.get(self.poly_modulus_degree)
        if limit is None:
            raise ConfigError(f"poly_modulus_degree must be one of {sorted(HE_STANDARD_MAX_BITS_128)}")
        if self.total_bits > limit:
            raise ConfigError(
                f"coefficient moduli of {self.total_bits} bits exceed the {limit} bits that give 128-bit "
                f"security at N={self.poly_modulus_degree} (HE standard)"
            )
        if len(self.coeff_mod_bit_sizes) < 2 or any(not 20 <= b <= 60 for b in self.coeff_mod_bit_sizes):
            raise ConfigError("coeff_mod_bit_sizes needs at least two primes of 20 to 60 bits")
        if not 0 < self.flood_bits <= 64 or self.feature_bound <= 0:
            raise ConfigError("flood_bits must be in (0, 64] and feature_bound positive")

    @property
    def total_bits(self) -> int:
        """log2(Q·P), the figure the HE standard bounds."""
        return sum(self.coeff_mod_bit_sizes)

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    @property
    def product_scale(self) -> float:
        """Δ_G·Δ_F, the scale of party1's result ciphertext."""
        return 2.0 ** (self.operand_scale_bits + self.feature_scale_bits)

    def to_meta(self) -> dict:
        meta = asdict(self)
        meta["coeff_mod_bit_sizes"] = list(self.coeff_mod_bit_sizes)
        return meta

    @classmethod
    def from_meta(cls, meta: dict) -> CKKSParameters:
        """Parameters sent by party2; anything malformed or insecure is a protocol error."""
        try:
            return cls(
                poly_modulus_degree=int(meta["poly_modulus_degree"]),
                coeff_mod_bit_sizes=tuple(int(b) for b in meta["coeff_mod_bit_sizes"]),
                operand_scale_bits=int(meta["operand_scale_bits"]),
                feature_scale_bits=int(meta["feature_scale_bits"]),
                flood_bits=int(meta["flood_bits"]),
                feature_bound=float(meta["feature_bound"]),
            )
        except (KeyError, TypeError, ValueError, ConfigError) as error:
            raise ProtocolError(f"party2 sent unusable CKKS parameters: {error}") from None


def error_bound(parameters: CKKSParameters, summed: int, ciphertexts: int, amplification: float,
                feature_factor: float = 1.0) -> float:
    """Bound on the CKKS error in one revealed coefficient, in coefficient units.

    The dominant term is Σ_i F_i ∗ e_i over the ``summed`` products (party2's encryption
    errors times party1's encoded features): each coefficient is Gaussian with std
    ≤ 3.2·Δ_F·|F|max·√summed, because an encoded F has Euclidean coefficient norm
    ≤ Δ_F·|F|max. ``amplification`` is N/2 when the result was summed over all slots
    (fhe1: the trace multiplies coefficient 0 by N/2) and 1 otherwise (fhe2). The other
    terms (re-randomisation, key switching) get a generous bound per ciphertext.
    ``feature_factor`` is √2 when party1's slots are complex (two features, a + i·b).
    """
    feature_norm = 2.0**parameters.feature_scale_bits * parameters.feature_bound * feature_factor
    main = ERROR_TAIL * FRESH_ERROR_STD * feature_norm * math.sqrt(summed)
    return (main + OTHER_ERROR_BOUND * ciphertexts) * amplification


def flood_std(parameters: CKKSParameters, summed: int, ciphertexts: int, amplification: float,
              feature_factor: float = 1.0) -> float:
    """σ of the Gaussian flooding noise party2 adds to each revealed coefficient."""
    return 2.0**parameters.flood_bits * error_bound(parameters, summed, ciphertexts, amplification, feature_factor)


def check_magnitude(parameters: CKKSParameters, modulus: int, largest: float, sigma: float) -> None:
    """Refuse a level whose revealed coefficients (``largest`` + flooding) could wrap mod Q."""
    reach = largest + 16.0 * sigma
    if reach * MAGNITUDE_MARGIN * 2.0 >= modulus:
        raise InputError(
            f"the joint product is too large for the CKKS parameters (coefficients up to 2^{math.log2(reach):.1f}, "
            f"modulus 2^{math.log2(modulus):.1f}); sample fewer pixels or lower feature_scale_bits"
        )
