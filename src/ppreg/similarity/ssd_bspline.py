"""SSD for B-spline deformations (forward-additive Gauss-Newton), with a sparse joint term.

The GN gradient needs Σ_x β_c(x)·∇Ĩ_k(x)·J(x) for every control point c and axis k
(∇Ĩ = Mᵀ∇I(W(x)), M the initial affine's matrix). With the public B-spline weights folded
into party2's operand, G[x, c] = β_c(x)·J(x) (4^d non-zeros per row, pattern public) plus
a last column J(x), the joint term is the product Fᵀ·G with party1's
F = [∇Ĩ (d columns), I(W)] (m = d + 1): secure work O(N·d), never an N × P matrix.
Only R[k, c] (k < d) and Σ I(W)·J are revealed; party2 also reveals ΣJ² once per level.
"""

from __future__ import annotations

import numpy as np

from ppreg.core.bspline import ControlGrid
from ppreg.io.images import Grid, Image
from ppreg.similarity.base import SparseOperand, sample_points


def bspline_basis(grid: Grid, control: ControlGrid, sample_index: np.ndarray | None):
    """Columns (N, 4^d + 1) and weights (N, 4^d + 1) of [β, 1] at the sampled voxels."""
    columns, weights = control.basis(sample_points(grid, sample_index))
    n = len(columns)
    return (np.hstack([columns, np.full((n, 1), control.n_points)]),
            np.hstack([weights, np.ones((n, 1))]))


def bspline_pattern(grid: Grid, control: ControlGrid, sample_index: np.ndarray | None) -> np.ndarray:
    """The public pattern of party2's operand (computed by every party and the dealer)."""
    return bspline_basis(grid, control, sample_index)[0]


def bspline_fixed_operand(fixed_level: Image, control: ControlGrid, sample_index: np.ndarray | None) -> SparseOperand:
    """Party2's sparse operand [β·J, J] (N × (P + 1)) and ΣJ²."""
    flat = np.arange(fixed_level.grid.n_voxels) if sample_index is None else sample_index
    values = fixed_level.array.ravel()[flat]
    columns, weights = bspline_basis(fixed_level.grid, control, sample_index)
    return SparseOperand(
        columns=columns,
        values=weights * values[:, None],
        n_columns=control.n_points + 1,
        summary={"sum_fixed_squared": np.array([values @ values])},
    )


def bspline_selection(dim: int, n_control: int) -> np.ndarray:
    """Revealed entries of Fᵀ·G: (∇Ĩ_k, β_c·J) for k < d, c < P and (I, J)."""
    selection = np.zeros((dim + 1, n_control + 1), dtype=bool)
    selection[:dim, :n_control] = True
    selection[dim, n_control] = True
    return selection
