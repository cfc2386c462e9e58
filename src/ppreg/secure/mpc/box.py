"""Window sums on ring elements: exact mod 2^64, so they run on additive shares locally.

The box sum is linear, hence box(⟨x⟩₁) + box(⟨x⟩₂) = box(x) mod 2^64 for shares of x;
edge replication (the clear :func:`ppreg.similarity.cc.box_sum`'s ``mode="nearest"``) is
linear too. Sums are prefix sums along each axis (numpy's uint64 ``cumsum`` wraps).
"""

from __future__ import annotations

import numpy as np

from ppreg.secure.mpc.ring import RING_DTYPE, ring_mul, ring_sub


def ring_box_sum(values: np.ndarray, radius: int) -> np.ndarray:
    """Σ over the (2r+1)^d window around each element, edges replicated, mod 2^64.

    Parameters
    ----------
    values : ndarray, any shape, dtype uint64
    radius : int

    Returns
    -------
    ndarray, same shape, dtype uint64
    """
    result = np.asarray(values, dtype=RING_DTYPE)
    for axis in range(result.ndim):
        result = _box_sum_along(result, radius, axis)
    return result


def _box_sum_along(values: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """One axis of the box sum: the edge-padded line and its prefix sums share one buffer
    (P[0] = 0, P[k] = sum of the first k padded values), and window j is P[j+2r+1] − P[j]."""
    line = np.moveaxis(values, axis, 0)
    count = line.shape[0]
    prefix = np.empty((count + 2 * radius + 1,) + line.shape[1:], dtype=RING_DTYPE)
    prefix[0] = 0
    prefix[1:radius + 1] = line[:1]
    prefix[radius + 1:radius + 1 + count] = line
    prefix[radius + 1 + count:] = line[-1:]
    with np.errstate(over="ignore"):
        np.add.accumulate(prefix, axis=0, out=prefix)
        window = np.subtract(prefix[2 * radius + 1:], prefix[:count])
    return np.moveaxis(window, 0, axis)


def ring_covariance(left: np.ndarray, right: np.ndarray, radius: int) -> np.ndarray:
    """B(x, y) = n·box(x⊙y) − box(x)⊙box(y) mod 2^64, bilinear in (x, y).

    With x = a and y = b encoded at scale 2^f this is X = n·D at scale 2^(2f)
    (:func:`ppreg.similarity.cc.joint_covariance`).
    """
    n = RING_DTYPE((2 * radius + 1) ** left.ndim)
    windowed = ring_box_sum(ring_mul(left, right), radius)
    return ring_sub(ring_mul(windowed, n), ring_mul(ring_box_sum(left, radius), ring_box_sum(right, radius)))
