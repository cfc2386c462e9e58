"""Sum of squared differences, inverse-compositional Gauss-Newton form.

The steepest-descent images use the *fixed* image's gradient (Baker & Matthews), so
S = ∇J·∂W/∂θ|_identity is party2's and constant per level. The only joint term per
iteration is then Fᵀ·G with F = I(W(x)) (N × 1, party1) and G = [S, J] (N × (p+1),
party2): R = [Σ I(W)·S, Σ I(W)·J]. Party2 reveals once per level H = SᵀS, SᵀJ and ΣJ².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppreg.core.interpolation import GradientImage
from ppreg.core.transforms import AffineModel
from ppreg.io.images import Image
from ppreg.similarity.base import DenseOperand, sample_points


def steepest_descent_images(
    fixed_level: Image, model: AffineModel, sample_index: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """S (N × p) and J (N,) at the sampled fixed voxels.

    S(x) = s·∇J(x)ᵀ·∂W/∂θ at the identity, with ∇J in intensity per mm.
    """
    gradient = GradientImage.from_image(fixed_level)
    flat = np.arange(fixed_level.grid.n_voxels) if sample_index is None else sample_index
    values = fixed_level.array.ravel()[flat]
    grad = np.stack([g.ravel()[flat] for g in gradient.gradient], axis=1)  # (N, d)
    coords = model.normalized_coordinates(sample_points(fixed_level.grid, sample_index))  # (N, d+1)
    per_affine = model.scale * (grad[:, :, None] * coords[:, None, :]).reshape(len(flat), -1)
    return per_affine @ model.affine_jacobian(model.identity()), values


def ssd_fixed_operand(fixed_level: Image, model: AffineModel, sample_index: np.ndarray | None) -> DenseOperand:
    """Party2's operand G = [S, J] and its per-level summary (H, SᵀJ, ΣJ², N)."""
    steepest, values = steepest_descent_images(fixed_level, model, sample_index)
    summary = {
        "hessian": steepest.T @ steepest,
        "steepest_dot_fixed": steepest.T @ values,
        "sum_fixed_squared": np.array([values @ values]),
    }
    return DenseOperand(dense=np.hstack([steepest, values[:, None]]), summary=summary)


@dataclass(frozen=True)
class SSDStep:
    """Cost and inverse-compositional GN quantities at the current parameters."""

    cost: float
    gradient: np.ndarray  # b = Σ S·(I(W) − J), shape (p,)


def ssd_features(warped_moving: np.ndarray) -> np.ndarray:
    """Party1's features F = I(W(x)), shape (N, 1)."""
    return warped_moving[:, None]


def ssd_step(warped_moving: np.ndarray, product: np.ndarray, summary: dict[str, np.ndarray]) -> SSDStep:
    """Cost (mean squared difference) and b from the revealed product R = Fᵀ·G (1 × (p+1))."""
    row = product[0]
    n = len(warped_moving)
    cost = (warped_moving @ warped_moving - 2.0 * row[-1] + summary["sum_fixed_squared"][0]) / n
    return SSDStep(cost=float(cost), gradient=row[:-1] - summary["steepest_dot_fixed"])
