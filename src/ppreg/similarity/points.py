"""Point-set distance: each party's side of the cross-covariance term.

With corresponding points x_i (party1, moving) and y_i (party2, fixed), each party
centres its own points, x'_i = x_i − x̄ and y'_i = y_i − ȳ. The only joint term is the
cross-covariance M = Σ x'_i y'_iᵀ = X'ᵀ·Y' (d × d), an Fᵀ·G product with F = X' and
G = Y'. Each party divides its centred coordinates by its own scale, the smallest
power of two ≥ its largest |coordinate|, so both operands lie in [−1, 1] whatever the
units or N (the mpc overflow budget, docs/mpc.md); party1 multiplies the revealed
product by both scales, which is exact for powers of two.

Party2 reveals once: its centroid ȳ (the translation needs it), its scale s₂ and
Σ‖y'_i‖² (the fiducial registration error and the ``--scaling`` factor need it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppreg.core.transforms import AffineModel
from ppreg.errors import InputError
from ppreg.io.points import PointSet
from ppreg.similarity.base import DenseOperand, LevelRequest

POINTS_METRIC = "points"
POINTCLOUD_MODEL = "pointcloud"  # the model name party1 announces in its hello


@dataclass(frozen=True)
class CentredPoints:
    """One party's points, centred and scaled.

    Attributes
    ----------
    normalised : ndarray, shape (N, d), (x − x̄) / scale, in [−1, 1]
    centroid : ndarray, shape (d,), mm
    scale : float, mm, a power of two
    sum_squared : float, Σ‖x − x̄‖² in mm²
    """

    normalised: np.ndarray
    centroid: np.ndarray
    scale: float
    sum_squared: float


def centre_points(points: np.ndarray) -> CentredPoints:
    """Centre (N, d) points in mm and scale them into [−1, 1] by a power of two."""
    centroid = points.mean(axis=0)
    centred = points - centroid
    largest = float(np.max(np.abs(centred), initial=0.0))
    scale = float(np.exp2(np.ceil(np.log2(largest)))) if largest > 0 else 1.0
    return CentredPoints(centred / scale, centroid, scale, float(np.sum(centred * centred)))


def points_request(dim: int, count: int) -> LevelRequest:
    """The single level of a point-set registration (no pyramid, no smoothing)."""
    model = AffineModel("rigid", dim, np.zeros(dim), 1.0)
    return LevelRequest(POINTS_METRIC, shrink=1, sigma=0.0, model=model, params={"count": count})


def points_fixed_operand(fixed: PointSet, request: LevelRequest) -> DenseOperand:
    """Party2's operand G = Y'/s₂ (N × d) and its summary (ȳ, s₂, Σ‖y'‖²)."""
    count = int(request.params.get("count", -1))
    if count != fixed.count:
        raise InputError(f"party1 has {count} moving points but party2 has {fixed.count} fixed points; "
                         "the rows of the two files must correspond")
    if request.model.dim != fixed.dim:
        raise InputError(f"party1's points are {request.model.dim}D but party2's are {fixed.dim}D")
    centred = centre_points(fixed.points)
    summary = {
        "centroid": centred.centroid,
        "scale": np.array([centred.scale]),
        "sum_squared": np.array([centred.sum_squared]),
    }
    return DenseOperand(dense=centred.normalised, summary=summary)

