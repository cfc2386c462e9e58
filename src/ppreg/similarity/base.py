"""What both sides of a metric agree on: the fixed-side operand and its level request."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ppreg.core.transforms import AffineModel
from ppreg.io.images import Grid


@dataclass(frozen=True)
class LevelRequest:
    """Public description of one pyramid level, sent by party1 to party2.

    Attributes
    ----------
    metric : {"ssd", "mi"}
    shrink : int, sigma : float (full-resolution voxels)
    model : AffineModel (its centre and scale are public)
    bins : int, number of fixed-image histogram bins (MI)
    params : dict, further public, JSON-able parameters a metric needs (e.g. a control grid)
    """

    metric: str
    shrink: int
    sigma: float
    model: AffineModel
    bins: int = 32
    params: dict = field(default_factory=dict)

    def to_meta(self) -> dict:
        return {
            "metric": self.metric,
            "shrink": self.shrink,
            "sigma": self.sigma,
            "bins": self.bins,
            "params": self.params,
            "model": {
                "kind": self.model.kind,
                "dim": self.model.dim,
                "center": self.model.center.tolist(),
                "scale": self.model.scale,
            },
        }

    @classmethod
    def from_meta(cls, meta: dict) -> "LevelRequest":
        model = meta["model"]
        return cls(
            metric=str(meta["metric"]),
            shrink=int(meta["shrink"]),
            sigma=float(meta["sigma"]),
            bins=int(meta["bins"]),
            params=dict(meta.get("params") or {}),
            model=AffineModel(
                kind=str(model["kind"]),
                dim=int(model["dim"]),
                center=np.asarray(model["center"], dtype=np.float64),
                scale=float(model["scale"]),
            ),
        )


class FixedOperand:
    """Party2's operand for one level: G (N × q) plus what party2 reveals once per level.

    ``summary`` holds per-level aggregates party2 reveals to party1 (listed in the
    privacy report). Engines use :meth:`dense_matrix` (MPC, FHE) or
    :meth:`left_product` (clear engine: the oracle).
    """

    summary: dict[str, np.ndarray]

    @property
    def shape(self) -> tuple[int, int]:
        raise NotImplementedError

    def dense_matrix(self) -> np.ndarray:
        """G as a dense float64 array, shape (N, q)."""
        raise NotImplementedError

    def left_product(self, features: np.ndarray) -> np.ndarray:
        """Fᵀ·G in float64 for features F (N × m); result (m × q)."""
        return features.T @ self.dense_matrix()

    def max_abs(self) -> float:
        """Bound on |G| for the fixed-point overflow budget."""
        dense = self.dense_matrix()
        return float(np.max(np.abs(dense))) if dense.size else 0.0


@dataclass
class DenseOperand(FixedOperand):
    """An operand stored as a dense matrix.

    ``feature_columns`` is m, the width of party1's F for this operand (public); an
    engine may lay G out for all m products at once (fhe2 replicates G's rows).
    """

    dense: np.ndarray
    summary: dict[str, np.ndarray] = field(default_factory=dict)
    feature_columns: int = 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.dense.shape

    def dense_matrix(self) -> np.ndarray:
        return self.dense


@dataclass
class SparseOperand(FixedOperand):
    """G with a public sparsity pattern: row x has ``values[x, s]`` in column ``columns[x, s]``.

    The pattern (e.g. which B-spline control points touch a voxel) is public, so only the
    values are private: engines mask and multiply N·s values instead of N·q.
    """

    columns: np.ndarray  # (N, s) int64
    values: np.ndarray  # (N, s) float64
    n_columns: int
    summary: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.values), self.n_columns

    def as_sparse(self):
        from scipy import sparse

        rows = np.repeat(np.arange(len(self.values)), self.values.shape[1])
        return sparse.csr_matrix((self.values.ravel(), (rows, self.columns.ravel())), shape=self.shape)

    def dense_matrix(self) -> np.ndarray:
        return self.as_sparse().toarray()

    def left_product(self, features: np.ndarray) -> np.ndarray:
        return np.asarray((self.as_sparse().T @ features).T)

    def max_abs(self) -> float:
        return float(np.max(np.abs(self.values))) if self.values.size else 0.0


def sample_points(grid: Grid, sample_index: np.ndarray | None) -> np.ndarray:
    """Physical points (N, d) of the sampled voxels of ``grid``."""
    return grid.physical_points(sample_index)


def normalize_intensity(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Map an image to [0, 1] by its own min/max (each party uses its own)."""
    low, high = float(values.min()), float(values.max())
    span = high - low if high > low else 1.0
    return (values - low) / span, low, span
