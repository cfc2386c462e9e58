"""Ring products against an operand with a public sparsity pattern (B-spline weights)."""

from __future__ import annotations

import numpy as np

from ppreg.secure.mpc.ring import RING_DTYPE


class SparsePattern:
    """Row x of G has non-zeros in columns ``columns[x, :]`` (public); values are private.

    Precomputes, once per level, the column-sorted order of the N·s non-zeros so each
    product Aᵀ·G is a gather, a wrapping multiply and ``np.add.reduceat`` (exact mod 2^64).
    """

    def __init__(self, columns: np.ndarray, n_columns: int):
        self.shape_nonzero = columns.shape
        self.n_columns = n_columns
        flat = columns.ravel()
        self.order = np.argsort(flat, kind="stable")
        self.rows = (self.order // columns.shape[1]).astype(np.int64)
        sorted_columns = flat[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_columns[1:] != sorted_columns[:-1]])
        self.present = sorted_columns[self.starts]

    def sort_values(self, values: np.ndarray) -> np.ndarray:
        """Values (N, s) in the pattern's column-sorted order (do this once per level)."""
        if values.shape != self.shape_nonzero:
            raise ValueError(f"values {values.shape} do not match the pattern {self.shape_nonzero}")
        return np.ascontiguousarray(values.ravel()[self.order])

    def transpose_product(self, left: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
        """leftᵀ·G mod 2^64: left (N, m) uint64, G given by its sorted values → (m, q) uint64."""
        result = np.zeros((left.shape[1], self.n_columns), dtype=RING_DTYPE)
        with np.errstate(over="ignore"):
            for k in range(left.shape[1]):
                products = left[self.rows, k] * sorted_values
                result[k, self.present] = np.add.reduceat(products, self.starts)
        return result
