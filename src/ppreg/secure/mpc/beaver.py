"""Generic Beaver matrix multiplication of two shared matrices: the paper's baseline.

The SPDZ route of the paper shares both operands and multiplies them with a dealer
triple ``(A, B, C = A B)``. Each party opens ``X - A`` and ``Y - B`` (its shares of
them), so per product each party sends ``(n m + m q)`` ring elements whatever the
ownership of X and Y. ppreg's own protocols avoid most of that; this module exists to
measure the saving against the generic construction.

Seed compression: the dealer draws ``A_0, B_0, C_0`` from party 0's stream and
``A_1, B_1`` from party 1's stream, so each party can expand those from a 32-byte seed;
only ``C_1 = A B - C_0`` (n q elements) has to be sent as a full tensor, to party 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppreg.secure.mpc.prg import MaskStream
from ppreg.secure.mpc.ring import ring_add, ring_matmul, ring_sub

RING_ELEMENT_BYTES = 8


@dataclass(frozen=True)
class MatmulTripleShare:
    """One party's share of a matrix Beaver triple ``C = A B``.

    Attributes
    ----------
    a : ndarray, shape (n, m), dtype uint64
    b : ndarray, shape (m, q), dtype uint64
    c : ndarray, shape (n, q), dtype uint64
    """

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray


def dealer_matmul_triple(
    shape_x: tuple[int, int],
    shape_y: tuple[int, int],
    stream0: MaskStream,
    stream1: MaskStream,
) -> tuple[MatmulTripleShare, MatmulTripleShare]:
    """The dealer's triple for one product of an (n, m) by an (m, q) shared matrix.

    Parameters
    ----------
    shape_x, shape_y : tuple of int
        ``(n, m)`` and ``(m, q)``.
    stream0, stream1 : MaskStream
        Streams whose seeds the dealer shares with party 0 and party 1 respectively.

    Returns
    -------
    share0, share1 : MatmulTripleShare
        With ``(a0 + a1) @ (b0 + b1) == c0 + c1 mod 2^64``.
    """
    n, m = shape_x
    m_y, q = shape_y
    if m != m_y:
        raise ValueError(f"inner dimensions differ: {shape_x} and {shape_y}")
    a0, b0, c0 = stream0.uint64((n, m)), stream0.uint64((m, q)), stream0.uint64((n, q))
    a1, b1 = stream1.uint64((n, m)), stream1.uint64((m, q))
    product = ring_matmul(ring_add(a0, a1), ring_add(b0, b1))
    c1 = ring_sub(product, c0)
    return MatmulTripleShare(a0, b0, c0), MatmulTripleShare(a1, b1, c1)


def beaver_open_round(
    x_share, y_share, triple_share: MatmulTripleShare
) -> tuple[np.ndarray, np.ndarray]:
    """What one party sends in the open round: its shares of ``X - A`` and ``Y - B``.

    Parameters
    ----------
    x_share : ndarray, shape (n, m), dtype uint64
    y_share : ndarray, shape (m, q), dtype uint64
    triple_share : MatmulTripleShare

    Returns
    -------
    eps_share : ndarray, shape (n, m), dtype uint64
    delta_share : ndarray, shape (m, q), dtype uint64
    """
    return ring_sub(x_share, triple_share.a), ring_sub(y_share, triple_share.b)


def beaver_finish(
    party_index: int, eps, delta, triple_share: MatmulTripleShare
) -> np.ndarray:
    """One party's share of ``Z = X Y`` from the opened ``eps = X - A``, ``delta = Y - B``.

    ``X Y = eps delta + eps B + A delta + C``; the public term ``eps delta`` is added by
    party 0 only.

    Parameters
    ----------
    party_index : {0, 1}
    eps : ndarray, shape (n, m), dtype uint64
    delta : ndarray, shape (m, q), dtype uint64
    triple_share : MatmulTripleShare

    Returns
    -------
    ndarray, shape (n, q), dtype uint64
    """
    if party_index not in (0, 1):
        raise ValueError(f"party_index must be 0 or 1, got {party_index}")
    z_share = ring_add(ring_matmul(eps, triple_share.b), ring_matmul(triple_share.a, delta))
    z_share = ring_add(z_share, triple_share.c)
    if party_index == 0:
        z_share = ring_add(z_share, ring_matmul(eps, delta))
    return z_share


def beaver_bytes_per_party(n: int, m: int, q: int) -> int:
    """Bytes each party sends in the open round of an (n, m) by (m, q) Beaver product.

    ``(n m + m q)`` ring elements of 8 bytes; the round is symmetric.
    """
    return (n * m + m * q) * RING_ELEMENT_BYTES
