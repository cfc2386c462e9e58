"""Returning an encrypted result to party1 without leaking to either party.

party1 holds [m] = (c0, c1) with c0 + c1·s = m + e (mod Q), where the result sits in a
few known coefficients of m. It

1. adds a fresh public-key encryption of zero, so c1 is a fresh RLWE sample that no
   longer depends on how [m] was computed from party2's ciphertexts and party1's F;
2. keeps c0 and sends only c1. Withholding c0 is the same as masking it with a uniform
   one-time pad in the plaintext ring: party2's whole view is one pseudorandom
   polynomial, so it learns nothing about m (hence about F) nor about the error e.

party2 computes d_t = (c1·s)_t for the agreed coefficients t only, adds integer Gaussian
noise of std σ ("noise flooding", σ = 2^κ × the bound on e) and returns them; party1
forms c0_t + d_t + η_t = m_t + e_t + η_t. Without the flooding, each d_t would be an
exact linear equation in the secret key s (Li & Micciancio, Eurocrypt 2021).
docs/fhe.md gives the bounds.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
import tenseal.sealapi as sealapi

from ppreg.errors import ProtocolError
from ppreg.secure.fhe.keys import SLOT_GENERATOR, PublicKeys
from ppreg.secure.fhe.sealbytes import ciphertext_range, ciphertext_words

NOISE_FINE_BITS = 40  # flooding noise keeps full integer resolution below this many bits
LIMB_BITS = 30  # c1 words are split in two limbs so ternary dot products fit in int64


def secure_generator() -> np.random.Generator:
    """A generator seeded from the OS CSPRNG, for noise (never for reproducibility)."""
    return np.random.Generator(np.random.Philox(secrets.randbits(128)))


def coefficient_indices(positions: np.ndarray, n_primes: int, degree: int) -> np.ndarray:
    """Flat word indices of coefficients ``positions`` of polynomial 0, prime by prime."""
    return (np.arange(n_primes)[:, None] * degree + np.asarray(positions)[None, :]).ravel()


class ResultShare:
    """Party1's side: re-randomise a result, send c1, keep c0 at the agreed coefficients."""

    def __init__(self, keys: PublicKeys) -> None:
        self.keys = keys

    def split(self, result, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Re-randomise ``result`` (modified in place) and split it.

        Parameters
        ----------
        result : Ciphertext
            At the data level, NTT form.
        positions : ndarray of int, shape (n_pos,)
            Coefficients party2 will reveal.

        Returns
        -------
        c1 : ndarray of uint64, shape (L, N)
            The second polynomial in coefficient form, residue by residue: to send.
        kept : ndarray of uint64, shape (n_pos, L)
            Residues of c0 at ``positions``: to keep.
        """
        keys = self.keys
        zero = sealapi.Ciphertext()
        keys.encryptor.encrypt_zero(result.parms_id(), zero)
        zero.scale = result.scale
        keys.evaluator.add_inplace(result, zero)
        keys.evaluator.transform_from_ntt_inplace(result)
        n_primes, degree = len(keys.primes), keys.degree
        kept = ciphertext_words(result, coefficient_indices(positions, n_primes, degree))
        c1 = ciphertext_range(result, n_primes * degree, 2 * n_primes * degree)
        return c1.reshape(n_primes, degree), kept.reshape(n_primes, len(positions)).T

    def combine(self, shares: np.ndarray, kept: np.ndarray) -> list[int]:
        """c0_t + party2's share, as centred integers in (−Q/2, Q/2]."""
        primes = self.keys.primes
        check_residues(shares, kept.shape, primes, 1, "party2's decryption shares")
        return crt_centered([[(int(a) + int(b)) % p for a, b, p in zip(x, y, primes)] for x, y in zip(kept, shares)], primes)


def check_residues(values, shape: tuple[int, ...], primes, prime_axis: int, what: str) -> None:
    """Refuse an array that is not uint64 of ``shape`` holding residues below ``primes`` along ``prime_axis``."""
    values = np.asarray(values)
    if values.shape != tuple(shape) or values.dtype != np.uint64:
        raise ProtocolError(f"{what} have shape {values.shape} and type {values.dtype}, expected {tuple(shape)} uint64")
    bounds = np.asarray(primes, dtype=np.uint64).reshape([-1 if axis == prime_axis else 1 for axis in range(len(shape))])
    if np.any(values >= bounds):
        raise ProtocolError(f"{what} hold values outside their moduli")


def key_rows(secret: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Rows r_t with (a·s)_t = ⟨r_t, a⟩ in Z[X]/(X^N+1); shape (n_pos, N), entries in {−1, 0, 1}."""
    degree = len(secret)
    index = np.arange(degree)
    rows = np.empty((len(positions), degree), dtype=np.int64)
    for row, t in zip(rows, positions):
        row[:] = secret[(t - index) % degree] * np.where(index <= t, 1, -1)
    return rows


def partial_decryption(rows: np.ndarray, c1: np.ndarray, primes) -> np.ndarray:
    """Party2's share d_t = (c1·s)_t mod each prime, shape (n_pos, L), uint64."""
    low_mask = (1 << LIMB_BITS) - 1
    shares = np.empty((len(rows), len(primes)), dtype=np.uint64)
    for column, (words, prime) in enumerate(zip(c1, primes)):
        high = rows @ (words >> np.uint64(LIMB_BITS)).astype(np.int64)
        low = rows @ (words & np.uint64(low_mask)).astype(np.int64)
        shares[:, column] = [((int(h) << LIMB_BITS) + int(lo)) % int(prime) for h, lo in zip(high, low)]
    return shares


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
    """Σ_{k ≡ j (mod period)} z_k for j < period (complex), from 2·period coefficients.

    The trace onto the subring fixed by rotations of ``period`` slots keeps exactly the
    coefficients at multiples of N/(2·period) (times N/(2·period)), so these sums are a
    small DFT of those coefficients — no rotation needed: with ω = exp(2πi/(4·period)),
    sum_j = N/(2·period)/Δ · Σ_t c_t·ω^(e_j·t), e_j = 3^j mod 4·period (SEAL's slot order).
    Real parts carry what party1 put in the real parts of its slots, imaginary parts what
    it put in the imaginary parts.

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
    ndarray of complex, shape (period,)
    """
    length = 2 * period
    values = np.array([c / scale for c in coefficients], dtype=np.float64)
    twisted = values * np.exp(2j * np.pi * np.arange(length) / (2 * length))
    spectrum = np.fft.ifft(twisted) * length  # Σ_t twisted_t·exp(2πi·l·t/length)
    exponents = np.array([pow(SLOT_GENERATOR, j, 2 * length) for j in range(period)])
    return (degree // length) * spectrum[(exponents - 1) // 2]
