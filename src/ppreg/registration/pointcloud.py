"""Rigid (or similarity) point-set registration, party1's driver: one joint product and
a closed-form SVD solution (Arun et al. 1987; Umeyama 1991 for the scale).

Direction (ITK, as for images): the transform maps fixed points y to moving points x,

    T(y) = c·R·(y − ȳ) + x̄,

chosen to minimise Σ‖x_i − T(y_i)‖². With the cross-covariance M = Σ x'_i y'_iᵀ = U·S·Vᵀ,
R = U·D·Vᵀ with D = diag(1, …, 1, sign det(U·Vᵀ)) (a proper rotation even when the best
orthogonal fit is a reflection) and, with scaling, c = tr(D·S) / Σ‖y'_i‖².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppreg.errors import InputError, ProtocolError
from ppreg.io.points import PointSet
from ppreg.secure.session import FixedPartyProxy
from ppreg.similarity.points import POINTCLOUD_MODEL, centre_points, points_request


@dataclass(frozen=True)
class PointcloudResult:
    """The fitted transform and the aggregates it was computed from (party1's view).

    Attributes
    ----------
    rotation : ndarray, shape (d, d), proper rotation (det +1)
    scale : float, 1 without scaling
    moving_centroid, fixed_centroid : ndarray, shape (d,), mm (x̄, ȳ)
    cross_covariance : ndarray, shape (d, d), M = Σ x'_i y'_iᵀ in mm²
    moving_sum_squared, fixed_sum_squared : float, Σ‖x'_i‖², Σ‖y'_i‖² in mm²
    count : int, N
    """

    rotation: np.ndarray
    scale: float
    moving_centroid: np.ndarray
    fixed_centroid: np.ndarray
    cross_covariance: np.ndarray
    moving_sum_squared: float
    fixed_sum_squared: float
    count: int

    @property
    def dim(self) -> int:
        return len(self.rotation)

    def fixed_to_moving(self, points: np.ndarray) -> np.ndarray:
        """T(y) for fixed-space points (N, d) in mm."""
        return (points - self.fixed_centroid) @ (self.scale * self.rotation).T + self.moving_centroid

    def moving_to_fixed(self, points: np.ndarray) -> np.ndarray:
        """T⁻¹(x) for moving-space points (N, d) in mm: they overlay the fixed points."""
        return (points - self.moving_centroid) @ self.rotation / self.scale + self.fixed_centroid

    def fre_mm(self) -> float:
        """Fiducial registration error: RMS of ‖T⁻¹(x_i) − y_i‖ in mm (fixed space).

        Σ‖x'_i − c·R·y'_i‖² = Σ‖x'‖² − 2c·tr(RᵀM) + c²·Σ‖y'‖², so party1 gets it from the
        aggregates without party2's points; dividing by c maps it to fixed space.
        """
        residual = (self.moving_sum_squared - 2.0 * self.scale * float(np.sum(self.rotation * self.cross_covariance))
                    + self.scale**2 * self.fixed_sum_squared)
        return float(np.sqrt(max(residual, 0.0) / self.count)) / self.scale


def fit_rotation_scale(cross_covariance: np.ndarray, fixed_sum_squared: float, scaling: bool) -> tuple[np.ndarray, float]:
    """(R, c) maximising Σ x'ᵀ·c·R·y' from M = Σ x' y'ᵀ (Kabsch/Umeyama), R proper."""
    u, singular, vt = np.linalg.svd(cross_covariance)
    signs = np.ones(len(singular))
    signs[-1] = -1.0 if np.linalg.det(u @ vt) < 0 else 1.0
    rotation = u @ np.diag(signs) @ vt
    if not scaling:
        return rotation, 1.0
    scale = float(singular @ signs) / fixed_sum_squared
    if not scale > 0:
        raise InputError("the point sets do not correspond: the best similarity fit has no positive scale")
    return rotation, scale


def register_pointcloud(moving: PointSet, proxy: FixedPartyProxy, scaling: bool = False) -> PointcloudResult:
    """Register party1's ``moving`` points to party2's corresponding fixed points behind ``proxy``."""
    proxy.hello(moving.dim, POINTCLOUD_MODEL)
    if proxy.fixed_points != moving.count:
        raise InputError(f"the moving point set has {moving.count} points but party2's fixed set has "
                         f"{proxy.fixed_points}; the rows of the two files must correspond")
    centred = centre_points(moving.points)
    summary = proxy.start_level(0, points_request(moving.dim, moving.count), None)
    fixed_centroid, fixed_scale, fixed_sum_squared = _check_summary(summary, moving.dim)
    product = proxy.product(centred.normalised, np.ones((moving.dim, moving.dim), dtype=bool))
    cross_covariance = product * (centred.scale * fixed_scale)
    rotation, scale = fit_rotation_scale(cross_covariance, fixed_sum_squared, scaling)
    return PointcloudResult(rotation, scale, centred.centroid, fixed_centroid, cross_covariance,
                            centred.sum_squared, fixed_sum_squared, moving.count)


def _check_summary(summary: dict[str, np.ndarray], dim: int) -> tuple[np.ndarray, float, float]:
    try:
        centroid, scale, sum_squared = summary["centroid"], summary["scale"], summary["sum_squared"]
    except KeyError as missing:
        raise ProtocolError(f"party2's level summary lacks {missing}") from None
    if centroid.shape != (dim,) or scale.shape != (1,) or sum_squared.shape != (1,) or not scale[0] > 0:
        raise ProtocolError("party2 sent a malformed point-set summary")
    return centroid, float(scale[0]), float(sum_squared[0])
