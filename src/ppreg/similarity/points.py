"""Point-set distance: each party's side of the cross-covariance term.

With corresponding points x_i (party1, moving) and y_i (party2, fixed), each party
centres its own points, x'_i = x_i − x̄ and y'_i = y_i − ȳ. The only joint term is the
cross-covariance M = Σ x'_i y'_iᵀ = X'ᵀ·Y' (d × d), an Fᵀ·G product with F = X'/s₁ and
G = K·Y'/s₂. Each party divides its centred coordinates by its own scale sᵢ, the
smallest power of two ≥ its largest |coordinate|, so they lie in [−1, 1] whatever the
units. Party2 then multiplies by a public gain K (a power of two set by N, see
:func:`operand_gain`): the engines' errors are absolute, so a larger G buys precision,
as long as N·|F|·|G| stays inside the mpc budget and the CKKS modulus (docs/mpc.md,
"Point clouds"). Party1 multiplies the revealed product by s₁·s₂/K, exact for powers of two.

Party2 reveals once: its centroid ȳ (the translation needs it), s₂/K (the mm per unit
of G) and Σ‖y'_i‖² (the fiducial registration error and the ``--scaling`` factor need it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ppreg.core.transforms import AffineModel
from ppreg.errors import InputError
from ppreg.io.points import PointSet
from ppreg.similarity.base import DenseOperand, LevelRequest

POINTS_METRIC = "points"
POINTCLOUD_MODEL = "pointcloud"  # the model name party1 announces in its hello
# N·|F|·|G| ≤ 2^28: inside the mpc budget (2^31 at f = 16) and the default CKKS modulus
# (revealed coefficients < Q/8 up to ≈ 2^37.7 with fhe1's point-cloud trace, 2^29.7 with an
# all-slot trace; fhe2's are smaller); a gain above 2^12 improved nothing (measured).
PRODUCT_BITS, MAX_GAIN_BITS = 28, 12


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


def operand_gain(count: int) -> float:
    """K = 2^min(12, max(0, 28 − ⌈log₂ N⌉)), public (it depends on N only)."""
    return float(2.0 ** min(MAX_GAIN_BITS, max(0, PRODUCT_BITS - math.ceil(math.log2(count)))))


def points_request(dim: int, count: int) -> LevelRequest:
    """The single level of a point-set registration (no pyramid, no smoothing)."""
    model = AffineModel("rigid", dim, np.zeros(dim), 1.0)
    return LevelRequest(POINTS_METRIC, shrink=1, sigma=0.0, model=model, params={"count": count})


def points_fixed_operand(fixed: PointSet, request: LevelRequest) -> DenseOperand:
    """Party2's operand G = K·Y'/s₂ (N × d) and its summary (ȳ, s₂/K, Σ‖y'‖²)."""
    count = int(request.params.get("count", -1))
    if count != fixed.count:
        raise InputError(f"party1 has {count} moving points but party2 has {fixed.count} fixed points; "
                         "the rows of the two files must correspond")
    if request.model.dim != fixed.dim:
        raise InputError(f"party1's points are {request.model.dim}D but party2's are {fixed.dim}D")
    centred = centre_points(fixed.points)
    gain = operand_gain(fixed.count)
    summary = {
        "centroid": centred.centroid,
        "scale": np.array([centred.scale / gain]),
        "sum_squared": np.array([centred.sum_squared]),
    }
    return DenseOperand(dense=centred.normalised * gain, summary=summary, feature_columns=fixed.dim)

