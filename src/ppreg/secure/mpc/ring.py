"""The ring Z_2^64 as ``numpy.uint64`` arrays with wrap-around arithmetic.

Every secret-shared value in the MPC engine is an element of Z_2^64. numpy's unsigned
integer arithmetic already wraps modulo 2^64; the helpers here only make that intent
explicit, convert inputs to :data:`RING_DTYPE` and silence the overflow warnings numpy
emits for scalar operands (locally, with :func:`numpy.errstate`).

Matrix products are the hot spot of the protocols. numpy's integer ``matmul`` is a plain
loop without BLAS, so :func:`ring_matmul` computes exact products modulo 2^64 with float64
BLAS instead (see its docstring for the method and measured speed).
"""

from __future__ import annotations

import sys

import numpy as np

RING_DTYPE = np.uint64
RING_BITS = 64

LIMB_BITS = 16
N_LIMBS = RING_BITS // LIMB_BITS
# A limb product is < 2^32; a float64 sum of at most 2^20 of them is < 2^52, so every
# partial sum BLAS forms, in any order and with or without FMA, is an exact integer.
MAX_EXACT_INNER = 1 << 20


def as_ring(values) -> np.ndarray:
    """Return ``values`` as a uint64 ring array (no copy when already uint64).

    Parameters
    ----------
    values : array_like of unsigned integers
        Ring elements. Signed inputs must be converted explicitly by the caller
        (e.g. :func:`ppreg.secure.mpc.fixed.encode`), so that no sign is guessed here.

    Returns
    -------
    ndarray, dtype uint64
    """
    return np.asarray(values, dtype=RING_DTYPE)


def ring_add(a, b) -> np.ndarray:
    """Element-wise ``a + b mod 2^64`` (uint64, numpy broadcasting)."""
    with np.errstate(over="ignore"):
        return np.add(as_ring(a), as_ring(b), dtype=RING_DTYPE)


def ring_sub(a, b) -> np.ndarray:
    """Element-wise ``a - b mod 2^64`` (uint64, numpy broadcasting)."""
    with np.errstate(over="ignore"):
        return np.subtract(as_ring(a), as_ring(b), dtype=RING_DTYPE)


def ring_neg(a) -> np.ndarray:
    """Element-wise ``-a mod 2^64`` (uint64)."""
    with np.errstate(over="ignore"):
        return np.subtract(RING_DTYPE(0), as_ring(a), dtype=RING_DTYPE)


def ring_mul(a, b) -> np.ndarray:
    """Element-wise ``a * b mod 2^64`` (uint64, numpy broadcasting)."""
    with np.errstate(over="ignore"):
        return np.multiply(as_ring(a), as_ring(b), dtype=RING_DTYPE)


def ring_sum(a, axis=None) -> np.ndarray:
    """Sum modulo 2^64 along ``axis`` (uint64; numpy's uint64 reduction wraps)."""
    with np.errstate(over="ignore"):
        return np.sum(as_ring(a), axis=axis, dtype=RING_DTYPE)


def ring_matmul(a, b) -> np.ndarray:
    """Exact matrix product ``a @ b mod 2^64`` of uint64 matrices via float64 BLAS.

    Each operand is split into four 16-bit limbs, ``a = sum_i a_i 2^(16 i)``. Then
    ``a @ b = sum_{i+j<4} (a_i @ b_j) 2^(16 (i+j)) mod 2^64``: the pairs with
    ``i + j >= 4`` vanish modulo 2^64, leaving 10 limb products. Each one is a float64
    BLAS product that is exact because the inner dimension is processed in blocks of at
    most 2^20 (every partial sum stays below 2^53); block results are converted to
    uint64 and recombined with wrap-around. Blocks are in fact much smaller (a few MB of
    limb buffers, reused across blocks) because touching fresh memory is what costs most.

    Measured on the development machine (2 cores, OpenBLAS, numpy 2.4) for
    ``a.T @ b`` with ``a, b`` of shape (200000, 32): numpy's uint64 ``matmul`` takes
    3.0-4.3 s, this function 0.13-0.38 s (9-28x faster, depending on what else runs on
    the two cores). Rerun with
    ``python -c "from ppreg.secure.mpc.ring import benchmark_matmul as b; b()"``.

    Parameters
    ----------
    a : array_like, shape (n, m), dtype uint64
    b : array_like, shape (m, q) or (m,), dtype uint64

    Returns
    -------
    ndarray, shape (n, q) or (n,), dtype uint64
        The product modulo 2^64.
    """
    a = as_ring(a)
    b = as_ring(b)
    if a.ndim != 2 or b.ndim not in (1, 2) or a.shape[1] != b.shape[0]:
        raise ValueError(f"ring_matmul: incompatible shapes {a.shape} and {b.shape}")
    vector_rhs = b.ndim == 1
    if vector_rhs:
        b = b[:, None]
    n, inner = a.shape
    q = b.shape[1]
    block_rows = _block_rows(n, q)
    # Fresh memory is slow to touch; one pair of buffers serves all blocks.
    left_memory = np.empty(N_LIMBS * n * block_rows, dtype=np.float64)
    right_memory = np.empty(N_LIMBS * q * block_rows, dtype=np.float64)
    result = np.zeros((n, q), dtype=RING_DTYPE)
    for start in range(0, inner, block_rows):
        stop = min(start + block_rows, inner)
        limbs_a = _left_limbs(a[:, start:stop], left_memory)
        stacked_b = _right_limbs(b[start:stop], right_memory)
        _accumulate_limb_products(result, limbs_a, stacked_b, q)
    return result[:, 0] if vector_rhs else result


def ring_transpose_matmul(a, b) -> np.ndarray:
    """``a.T @ b mod 2^64`` without copying ``a`` into transposed layout.

    ``a.T`` is a strided view, and :func:`ring_matmul` reads the limbs of a transposed
    view straight from the untransposed memory; BLAS consumes the transposed limb
    matrices through its ``trans`` flag.

    Parameters
    ----------
    a : array_like, shape (m, n), dtype uint64
    b : array_like, shape (m, q) or (m,), dtype uint64

    Returns
    -------
    ndarray, shape (n, q) or (n,), dtype uint64
    """
    return ring_matmul(as_ring(a).T, b)


# Target size of the reusable limb buffers of one ring_matmul call.
_BUFFER_BYTES = 4 << 20
_MIN_BLOCK_ROWS = 256


def _block_rows(n: int, q: int) -> int:
    """Inner-dimension block length: exact (<= 2^20) and with buffers of a few MB."""
    rows = _BUFFER_BYTES // (8 * N_LIMBS * max(n + q, 1))
    return int(min(MAX_EXACT_INNER, max(_MIN_BLOCK_ROWS, rows)))


def _left_limbs(block: np.ndarray, memory: np.ndarray) -> list[np.ndarray]:
    """The four limbs of a left operand block (n, r), as (n, r) float64 matrices.

    They are written into ``memory`` (float64, at least 4 n r elements, reused across
    blocks). A transposed view (e.g. from :func:`ring_transpose_matmul`) is read from
    its untransposed memory and returned as transposed views, which BLAS takes as is.
    """
    n, rows = block.shape
    if block.strides[0] == block.itemsize:
        out = memory[: N_LIMBS * n * rows].reshape(N_LIMBS, rows, n)
        np.copyto(out, _limb_words(block.T).transpose(2, 0, 1))
        return [limb.T for limb in out]
    out = memory[: N_LIMBS * n * rows].reshape(N_LIMBS, n, rows)
    np.copyto(out, _limb_words(block).transpose(2, 0, 1))
    return list(out)


def _right_limbs(block: np.ndarray, memory: np.ndarray) -> np.ndarray:
    """The limbs of a right operand block (r, q) side by side: (r, 4 q) float64.

    ``[b_0 | b_1 | b_2 | b_3]``: a left limb ``a_i`` meets all the right limbs it pairs
    with (``b_0 .. b_{3-i}``, a leading column slice) in one BLAS call.
    """
    rows, q = block.shape
    out = memory[: N_LIMBS * rows * q].reshape(rows, N_LIMBS, q)
    np.copyto(out, _limb_words(block).transpose(0, 2, 1))
    return out.reshape(rows, N_LIMBS * q)


def _limb_words(x: np.ndarray) -> np.ndarray:
    """View a 2-D uint64 array as its 16-bit limbs, shape (rows, cols, 4), low first.

    Viewing memory as uint16 is ~10x faster than shifting and masking; it needs a
    contiguous last axis, which a copy provides otherwise.
    """
    if x.strides[1] != x.itemsize:
        x = np.ascontiguousarray(x)
    words = x.view(np.uint16).reshape(x.shape + (N_LIMBS,))
    return words if sys.byteorder == "little" else words[..., ::-1]


def _accumulate_limb_products(result, limbs_a, stacked_b, q: int) -> None:
    """Add ``sum_{i+j<4} (a_i @ b_j) 2^(16 (i+j))`` to ``result`` modulo 2^64."""
    for i, limb_a in enumerate(limbs_a):
        partial = limb_a @ stacked_b[:, : (N_LIMBS - i) * q]
        for j in range(N_LIMBS - i):
            exact = partial[:, j * q : (j + 1) * q].astype(RING_DTYPE)
            with np.errstate(over="ignore"):
                result += exact << RING_DTYPE(LIMB_BITS * (i + j))


def benchmark_matmul(rows: int = 200_000, cols: int = 32) -> None:
    """Print the time of ``a.T @ b`` with numpy uint64 matmul and with ring_matmul."""
    import time

    generator = np.random.default_rng(0)
    a = generator.integers(0, 2**64, size=(rows, cols), dtype=np.uint64)
    b = generator.integers(0, 2**64, size=(rows, cols), dtype=np.uint64)
    start = time.perf_counter()
    reference = a.T @ b
    numpy_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ours = ring_transpose_matmul(a, b)
    ours_seconds = time.perf_counter() - start
    assert np.array_equal(reference, ours)
    print(
        f"({rows}x{cols})^T.({rows}x{cols}): numpy uint64 matmul {numpy_seconds:.3f} s, "
        f"ring_matmul {ours_seconds:.3f} s, speed-up {numpy_seconds / ours_seconds:.1f}x"
    )



NARROW_COLUMNS = 16  # below this many columns, numpy's uint64 mat-vec beats the limb split


def ring_transpose_matmul_narrow(a: np.ndarray, b_transposed: np.ndarray) -> np.ndarray:
    """aᵀ·b mod 2^64 for a narrow ``a`` and a ``b`` already stored transposed.

    Parameters
    ----------
    a : ndarray, shape (N, m), uint64
        Changes every call (masked features).
    b_transposed : ndarray, shape (q, N), uint64, C-contiguous
        Constant for a level (an operand or its mask): transposing it once per level
        turns each product into m contiguous uint64 mat-vecs, which numpy runs at
        memory speed (≈100× faster than the limb split for m = 1, N = 650 000).

    Returns
    -------
    ndarray, shape (m, q), uint64
    """
    if a.shape[1] > NARROW_COLUMNS:
        return ring_transpose_matmul(a, b_transposed.T)
    columns = np.ascontiguousarray(np.asarray(a, dtype=RING_DTYPE).T)
    with np.errstate(over="ignore"):
        return np.stack([b_transposed @ column for column in columns])
