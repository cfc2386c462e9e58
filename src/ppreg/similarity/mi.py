"""Mattes mutual information with a cubic B-spline Parzen window (moving image) and
zero-order bins (fixed image), as in the paper's Eq. (8)–(9).

Joint term per evaluation: R = Fᵀ·G with

* F (N × B(d+1), party1): [ψ(r − η(x)) for r < B, ψ'(r − η(x))·∂η/∂I·s·∇_k I(W(x)) for (r, k)]
* G (N × B(d+1), party2): G[x, j·B + t] = X̃_j(x)·[t(x) = t] for j ≤ d (X̃_d = 1)

Only the blocks that the metric needs are revealed: the joint histogram
P(r, t) = Σ ψ·[t] (B × B) and its derivative D(r, k, t, j) (B·d × B·(d+1)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ppreg.core.transforms import AffineModel
from ppreg.io.images import Image
from ppreg.similarity.base import FixedOperand, sample_points

PARZEN_PADDING = 2  # bins kept free at each end so the cubic window never falls off


def cubic_bspline(u: np.ndarray) -> np.ndarray:
    """Cubic B-spline β³(u)."""
    a = np.abs(u)
    return np.where(a < 1, 2.0 / 3.0 - a**2 + 0.5 * a**3, np.where(a < 2, (2.0 - a) ** 3 / 6.0, 0.0))


def cubic_bspline_derivative(u: np.ndarray) -> np.ndarray:
    """dβ³/du."""
    a = np.abs(u)
    return np.where(a < 1, -2.0 * u + 1.5 * u * a, np.where(a < 2, -0.5 * np.sign(u) * (2.0 - a) ** 2, 0.0))


def fixed_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Zero-order bin index t(x) ∈ [0, B) of each fixed value (party2's own min/max)."""
    low, high = float(values.min()), float(values.max())
    span = high - low if high > low else 1.0
    return np.clip(((values - low) / span * n_bins).astype(np.int64), 0, n_bins - 1)


@dataclass
class MIOperand(FixedOperand):
    """G for MI kept in factored form (bin index + public coordinates): never dense unless asked."""

    bins: np.ndarray  # (N,) int64
    coords: np.ndarray  # (N, d+1), X̃
    n_bins: int
    summary: dict

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.bins), self.n_bins * self.coords.shape[1]

    def dense_matrix(self) -> np.ndarray:
        n, blocks = self.coords.shape
        dense = np.zeros((n, blocks, self.n_bins))
        dense[np.arange(n), :, self.bins] = self.coords
        return dense.reshape(n, blocks * self.n_bins)

    def left_product(self, features) -> np.ndarray:
        if isinstance(features, ParzenFeatures):
            return self._parzen_product(features)
        n = len(self.bins)
        onehot = sparse.csr_matrix((np.ones(n), (np.arange(n), self.bins)), shape=(n, self.n_bins))
        blocks = [(onehot.T @ (features * self.coords[:, [j]])).T for j in range(self.coords.shape[1])]
        return np.hstack(blocks)

    def _parzen_product(self, features: "ParzenFeatures") -> np.ndarray:
        """Fᵀ·G from the factored F: one histogram (bincount) per window offset, gradient
        axis and coordinate — O(N·4·(d+1)²) instead of O(N·B²·(d+1)²)."""
        bins, dim = self.n_bins, self.coords.shape[1] - 1
        result = np.zeros((bins * (dim + 1), bins * (dim + 1)))
        for offset in range(WINDOW):
            cell = (features.first_bin + offset) * bins + self.bins
            for j in range(dim + 1):
                columns = slice(j * bins, (j + 1) * bins)
                weight = self.coords[:, j]
                result[:bins, columns] += _histogram(cell, features.weights[:, offset] * weight, bins)
                for k in range(dim):
                    values = features.derivative_weights[:, offset] * features.scaled_gradient[:, k] * weight
                    result[bins + k: bins * (dim + 1): dim, columns] += _histogram(cell, values, bins)
        return result

    def max_abs(self) -> float:
        return float(np.max(np.abs(self.coords))) if self.coords.size else 0.0


def _histogram(cell: np.ndarray, weights: np.ndarray, bins: int) -> np.ndarray:
    return np.bincount(cell, weights=weights, minlength=bins * bins).reshape(bins, bins)


def mi_fixed_operand(fixed_level: Image, model: AffineModel, sample_index: np.ndarray | None, n_bins: int) -> MIOperand:
    """Party2's operand: bins of J at the sampled voxels and the public coordinates."""
    flat = np.arange(fixed_level.grid.n_voxels) if sample_index is None else sample_index
    bins = fixed_bins(fixed_level.array.ravel(), n_bins)[flat]
    coords = model.normalized_coordinates(sample_points(fixed_level.grid, sample_index))
    return MIOperand(bins=bins, coords=coords, n_bins=n_bins, summary={})


@dataclass(frozen=True)
class ParzenScale:
    """Moving-image Parzen mapping η = (I − low)/span·(B − 2·pad − 1) + pad."""

    low: float
    span: float
    n_bins: int

    @property
    def slope(self) -> float:
        return (self.n_bins - 2 * PARZEN_PADDING - 1) / self.span

    def position(self, values: np.ndarray) -> np.ndarray:
        return (np.clip(values, self.low, self.low + self.span) - self.low) * self.slope + PARZEN_PADDING


@dataclass
class ParzenFeatures:
    """Party1's MI features F (N × B·(d+1)) in factored form.

    The cubic window touches 4 consecutive bins per sample, so F is stored as the first
    bin, the 4 window weights ψ, the 4 derivative weights and the scaled gradient. The
    clear engine multiplies this form directly (``MIOperand.left_product``); secure
    engines mask the dense matrix (``np.asarray``), since the non-zero pattern would
    reveal each sample's intensity bin.
    """

    first_bin: np.ndarray  # (N,) int64
    weights: np.ndarray  # (N, 4): ψ(r − η) for r = first_bin + o
    derivative_weights: np.ndarray  # (N, 4): −β³'(r − η)·slope
    scaled_gradient: np.ndarray  # (N, d): s·∇I(W(x))
    n_bins: int

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.first_bin), self.n_bins * (self.scaled_gradient.shape[1] + 1)

    def __len__(self) -> int:
        return len(self.first_bin)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        n, d = self.scaled_gradient.shape
        weights = np.zeros((n, self.n_bins))
        derivative = np.zeros((n, self.n_bins))
        rows = np.arange(n)
        for offset in range(WINDOW):
            weights[rows, self.first_bin + offset] = self.weights[:, offset]
            derivative[rows, self.first_bin + offset] = self.derivative_weights[:, offset]
        dense = np.hstack([weights, (derivative[:, :, None] * self.scaled_gradient[:, None, :]).reshape(n, -1)])
        return dense if dtype is None else dense.astype(dtype)


WINDOW = 4  # bins touched by the cubic B-spline window


def mi_features(
    warped: np.ndarray, gradient: np.ndarray, inside: np.ndarray, scale: ParzenScale, model_scale: float
) -> ParzenFeatures:
    """Party1's features. A sample outside the moving image counts as intensity 0 (the
    image minimum: zero padding, as for SSD) with no gradient, so moving the overlap
    away can never raise MI by dropping samples from the histogram."""
    position = scale.position(warped)
    first_bin = np.clip(np.floor(position).astype(np.int64) - 1, 0, scale.n_bins - WINDOW)
    offset = (first_bin[:, None] + np.arange(WINDOW)[None, :]) - position[:, None]  # r − η
    weights = cubic_bspline(offset)
    # dψ(r − η)/dθ = −β³'(r − η)·slope·∇I·∂W/∂θ; ∂W/∂θ_aff(k, j) = s·X̃_j e_k
    derivative_weights = -cubic_bspline_derivative(offset) * (scale.slope * inside)[:, None]
    return ParzenFeatures(first_bin, weights, derivative_weights, model_scale * gradient, scale.n_bins)


def mi_selection(n_bins: int, dim: int) -> np.ndarray:
    """Which entries of Fᵀ·G are revealed: P (ψ × [t]) and D ((r,k) × (j,t))."""
    rows, cols = n_bins * (dim + 1), n_bins * (dim + 1)
    selection = np.zeros((rows, cols), dtype=bool)
    selection[:n_bins, dim * n_bins:] = True
    selection[n_bins:, :] = True
    return selection


def mi_value_and_gradient(product: np.ndarray, n_valid: int, n_bins: int, dim: int) -> tuple[float, np.ndarray]:
    """MI and dMI/dθ_aff (length d·(d+1), (k, j) order) from the revealed product."""
    joint = product[:n_bins, dim * n_bins:] / max(n_valid, 1)  # p(r, t)
    derivative = product[n_bins:, :].reshape(n_bins, dim, dim + 1, n_bins) / max(n_valid, 1)  # (r,k,j,t)
    moving_marginal = joint.sum(axis=1)
    fixed_marginal = joint.sum(axis=0)
    positive = joint > 1e-16
    ratio = np.zeros_like(joint)
    ratio[positive] = np.log(joint[positive] / (moving_marginal[:, None] * fixed_marginal[None, :])[positive])
    value = float(np.sum(joint[positive] * ratio[positive]))
    log_conditional = np.zeros_like(joint)
    log_conditional[positive] = np.log(joint[positive] / np.broadcast_to(moving_marginal[:, None], joint.shape)[positive])
    gradient = np.einsum("rkjt,rt->kj", derivative, log_conditional).ravel()
    return value, gradient
