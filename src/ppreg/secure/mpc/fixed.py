"""Fixed-point encoding of reals into Z_2^64, its error bounds and overflow budget.

A real ``x`` is encoded as the integer ``round(x * 2^f)`` (round to nearest) stored in
two's complement modulo 2^64, where ``f`` is the number of fractional bits. A product of
two encoded values is at scale 2^(2f); sums of such products are revealed and decoded at
that scale without any truncation, so their only error is the encoding error of the
factors (:func:`product_error_bound`), provided the exact sum fits in a signed 64-bit
integer (:func:`check_product_budget`). When a product must be kept at scale 2^f,
:func:`truncate_share` implements the probabilistic local truncation of SecureML
(Mohassel & Zhang, IEEE S&P 2017, Theorem 1).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ppreg.errors import InputError
from ppreg.secure.mpc.ring import RING_BITS, RING_DTYPE, ring_neg

DEFAULT_FRAC_BITS = 16
DEFAULT_BOUND_BITS = 62


def encode(values, frac_bits: int = DEFAULT_FRAC_BITS, bound_bits: int = DEFAULT_BOUND_BITS):
    """Encode reals as fixed-point ring elements ``round(x * 2^frac_bits) mod 2^64``.

    Parameters
    ----------
    values : array_like of float, any shape
    frac_bits : int
        Fractional bits ``f``; the resolution is 2^-f and the encoding error of each
        value at most 2^-(f+1).
    bound_bits : int, at most 63
        Budget: every value must satisfy ``|x| * 2^f < 2^bound_bits``; the encoded
        integers then satisfy ``|round(x * 2^f)| <= 2^bound_bits`` (equality only for
        values within half a unit of the limit).

    Returns
    -------
    ndarray, same shape, dtype uint64

    Raises
    ------
    InputError
        If a value is NaN or infinite, or exceeds the budget 2^(bound_bits - f).
    """
    _check_bits(frac_bits, bound_bits)
    values = np.asarray(values, dtype=np.float64)
    # Scaling by a power of two is exact in float64, so rint is the only rounding.
    # Near 2^63 every float64 is an integer, so rint never pushes a value past 2^63.
    scaled = np.ldexp(values, frac_bits)
    peak = float(np.max(np.abs(scaled), initial=0.0))
    if not peak < 2.0**bound_bits and not np.all(np.isfinite(values)):  # NaN and inf fail "peak <" too
        raise InputError("fixed-point encoding: input contains NaN or infinity")
    if peak >= 2.0**bound_bits:
        raise InputError(
            f"fixed-point overflow: |value| up to {float(np.max(np.abs(values))):.6g} "
            f"exceeds the budget 2^(bound_bits-f) = 2^{bound_bits - frac_bits} = "
            f"{2.0 ** (bound_bits - frac_bits):.6g} (frac_bits={frac_bits}, "
            f"bound_bits={bound_bits}); normalise the inputs or lower frac_bits"
        )
    return np.rint(scaled).astype(np.int64).view(RING_DTYPE)


def decode(encoded, frac_bits: int = DEFAULT_FRAC_BITS) -> np.ndarray:
    """Decode ring elements as signed fixed-point numbers with ``frac_bits`` fraction bits.

    Parameters
    ----------
    encoded : array_like, dtype uint64
        Read as two's complement int64.
    frac_bits : int

    Returns
    -------
    ndarray, same shape, dtype float64
        ``int64(encoded) * 2^-frac_bits``; exact when ``|int64(encoded)| <= 2^53``,
        otherwise with float64's relative rounding of 2^-53.
    """
    signed = np.asarray(encoded, dtype=RING_DTYPE).view(np.int64)
    return np.ldexp(signed.astype(np.float64), -frac_bits)


def decode_product(encoded, frac_bits: int = DEFAULT_FRAC_BITS) -> np.ndarray:
    """Decode sums of products of two encoded values (scale 2^(2 frac_bits)), float64."""
    return decode(encoded, 2 * frac_bits)


def product_error_bound(
    n_terms: int, max_abs_a: float, max_abs_b: float, frac_bits: int = DEFAULT_FRAC_BITS
) -> float:
    """Absolute error bound of a revealed sum of ``n_terms`` products at scale 2^(2f).

    With ``ã = a + e_a``, ``b̃ = b + e_b`` and ``|e_a|, |e_b| <= u = 2^-(f+1)``,
    ``ã b̃ - a b = a e_b + b e_a + e_a e_b``, so each term errs by at most
    ``|a| u + |b| u + u^2``. The bound holds for the exact revealed integer divided by
    2^(2f); float64 decoding adds a relative 2^-53 on top.

    Parameters
    ----------
    n_terms : int
    max_abs_a, max_abs_b : float
        Bounds on ``|a_i|`` and ``|b_i|`` (real values, before encoding).
    frac_bits : int

    Returns
    -------
    float
        ``n (max_a 2^-(f+1) + max_b 2^-(f+1) + 2^-(2f+2))``.
    """
    unit = 2.0 ** -(frac_bits + 1)
    return n_terms * (max_abs_a * unit + max_abs_b * unit + unit * unit)


def check_product_budget(
    n_terms: int, max_abs_a: float, max_abs_b: float, frac_bits: int = DEFAULT_FRAC_BITS
) -> None:
    """Raise if a sum of ``n_terms`` encoded products could leave the signed 64-bit range.

    The revealed integer is ``sum ã_i b̃_i 2^(2f)``; it decodes correctly only if its
    magnitude stays below 2^63. Encoding may round each factor up by 2^-(f+1), so the
    exact test is ``n (max_a + 2^-(f+1)) (max_b + 2^-(f+1)) 2^(2f) < 2^63``, whose
    leading term is ``n max_a max_b 2^(2f)``. Evaluated in exact rational arithmetic.

    Raises
    ------
    InputError
        If the worst case reaches 2^63.
    """
    float_unit = 2.0 ** -(frac_bits + 1)
    estimate = n_terms * (max_abs_a + float_unit) * (max_abs_b + float_unit) * 2.0 ** (2 * frac_bits)
    if estimate < 2.0 ** (RING_BITS - 2):
        return  # float rounding (relative 2^-50) cannot bridge a factor of 2: no exact test needed
    unit = Fraction(1, 2 ** (frac_bits + 1))
    worst = (
        n_terms
        * (Fraction(max_abs_a) + unit)
        * (Fraction(max_abs_b) + unit)
        * 2 ** (2 * frac_bits)
    )
    if worst >= 2 ** (RING_BITS - 1):
        raise InputError(
            f"fixed-point overflow: a sum of {n_terms} products of values up to "
            f"{max_abs_a:.6g} and {max_abs_b:.6g} at scale 2^{2 * frac_bits} reaches "
            f"2^{float(np.log2(float(worst))):.2f} >= 2^63; normalise the inputs, "
            "sample fewer points or lower frac_bits"
        )


def truncate_share(party_index: int, share, frac_bits: int = DEFAULT_FRAC_BITS):
    """One party's local step of SecureML's probabilistic truncation by ``frac_bits``.

    Party 0 shifts its share right (logically, as an unsigned integer); party 1 negates,
    shifts and negates back. No communication is needed. If the shared value ``x``
    satisfies ``|x| < 2^l_x``, the shares of the result reconstruct to
    ``floor(x / 2^f)`` or ``floor(x / 2^f) + 1`` (an error below one unit of 2^-f
    after decoding) except with probability ``|x| / 2^64 <= 2^(l_x + 1 - 64)``, when
    they are off by about 2^(64 - f) (a wrapped, useless result). Keep ``l_x`` small.

    Parameters
    ----------
    party_index : {0, 1}
    share : array_like, dtype uint64
    frac_bits : int

    Returns
    -------
    ndarray, same shape, dtype uint64
    """
    share = np.asarray(share, dtype=RING_DTYPE)
    shift = RING_DTYPE(frac_bits)
    if party_index == 0:
        return share >> shift
    if party_index == 1:
        return ring_neg(ring_neg(share) >> shift)
    raise ValueError(f"party_index must be 0 or 1, got {party_index}")


def truncate_shares(share0, share1, frac_bits: int = DEFAULT_FRAC_BITS):
    """Both parties' :func:`truncate_share` at once (for tests and single-process use).

    Returns
    -------
    tuple of ndarray, dtype uint64
        The truncated shares of party 0 and party 1.
    """
    return truncate_share(0, share0, frac_bits), truncate_share(1, share1, frac_bits)


def truncation_failure_probability(value_bits: int) -> float:
    """Upper bound ``2^(value_bits + 1 - 64)`` on the chance a truncation wraps."""
    return 2.0 ** (value_bits + 1 - RING_BITS)


def _check_bits(frac_bits: int, bound_bits: int) -> None:
    if not 0 <= frac_bits < bound_bits <= RING_BITS - 1:
        raise ValueError(
            f"need 0 <= frac_bits < bound_bits <= 63, got {frac_bits} and {bound_bits}"
        )


def print_budget_table(frac_bits: int = DEFAULT_FRAC_BITS) -> None:
    """Print the overflow budget table of docs/mpc.md: sums of N products |a| <= G, |b| <= 1."""
    unit = Fraction(1, 2 ** (frac_bits + 1))
    print(f"frac_bits = {frac_bits}")
    print("| N | largest G | error bound, G = 1 | error bound, largest G | relative to N·G |")
    print("|---|---|---|---|---|")
    for n_terms in (10**4, 10**6, 10**7):
        limit = Fraction(2 ** (RING_BITS - 1), n_terms * (1 + unit) * 2 ** (2 * frac_bits))
        largest = float(limit - unit)
        at_one = product_error_bound(n_terms, 1.0, 1.0, frac_bits)
        at_largest = product_error_bound(n_terms, largest, 1.0, frac_bits)
        print(
            f"| 10^{round(np.log10(n_terms))} | {largest:.6g} | {at_one:.3g} | "
            f"{at_largest:.3g} | {at_largest / (n_terms * largest):.3g} |"
        )
