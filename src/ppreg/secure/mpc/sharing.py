"""Additive two-party secret sharing over Z_2^64.

A secret ``x`` is split as ``x = s0 + s1 mod 2^64`` with ``s0`` a fresh uniform mask.
Each share alone is uniform and says nothing about ``x``. Party 0's share is the mask
itself, so whoever can expand the mask's seed can hold share 0 without it ever being
sent; only ``s1`` has to travel as a full tensor.
"""

from __future__ import annotations

import numpy as np

from ppreg.secure.mpc.fixed import DEFAULT_FRAC_BITS, decode, encode
from ppreg.secure.mpc.prg import MaskStream
from ppreg.secure.mpc.ring import as_ring, ring_add, ring_sub


def share(secret, stream: MaskStream) -> tuple[np.ndarray, np.ndarray]:
    """Split ring elements into two additive shares.

    Parameters
    ----------
    secret : array_like, any shape, dtype uint64
    stream : MaskStream
        Source of the mask; its next ``secret.size`` elements become share 0.

    Returns
    -------
    share0, share1 : ndarray, same shape, dtype uint64
        ``share0`` is the mask, ``share1 = secret - share0 mod 2^64``.
    """
    secret = as_ring(secret)
    share0 = stream.uint64(secret.shape)
    return share0, ring_sub(secret, share0)


def reconstruct(share0, share1) -> np.ndarray:
    """Recombine two additive shares: ``share0 + share1 mod 2^64`` (uint64)."""
    return ring_add(share0, share1)


def share_float(
    values, stream: MaskStream, frac_bits: int = DEFAULT_FRAC_BITS
) -> tuple[np.ndarray, np.ndarray]:
    """Encode reals in fixed point (:func:`~ppreg.secure.mpc.fixed.encode`) and share them.

    Parameters
    ----------
    values : array_like of float, any shape
    stream : MaskStream
    frac_bits : int

    Returns
    -------
    share0, share1 : ndarray, same shape, dtype uint64

    Raises
    ------
    InputError
        If a value is not finite or exceeds the fixed-point budget.
    """
    return share(encode(values, frac_bits), stream)


def reconstruct_float(share0, share1, frac_bits: int = DEFAULT_FRAC_BITS) -> np.ndarray:
    """Recombine shares and decode them as fixed point with ``frac_bits`` (float64).

    Pass ``2 * frac_bits`` for untruncated sums of products.
    """
    return decode(reconstruct(share0, share1), frac_bits)
