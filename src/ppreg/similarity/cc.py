"""Local (windowed) cross-correlation, ANTs style: the clear math and its party split.

For a window W(x) of n = (2r+1)^d voxels around x (edges replicated), with a = I∘φ1
(party1's warped image) and b = J∘φ2 (party2's) on the midpoint grid:

  E = Σ_W (a − μ_a)²      (party1's alone)        F = Σ_W (b − μ_b)²   (party2's alone)
  D = Σ_W (a − μ_a)(b − μ_b),   X = n·D = n·box(a·b) − box(a)·box(b)   (joint, bilinear)
  c = D/√(EF) = X·e·f,   e = 1/√(nE),  f = 1/√(nF)                       (|c| ≤ 1)

The metric is mean(c²) (ANTs reports its negative). With Î = (a − μ_a)/√E and
Ĵ = (b − μ_b)/√F (|Î|, |Ĵ| ≤ 1), the paper's Eq. 10–11 (ANTs' centre-voxel gradient) are

  g1 = 2D/(EF)·(J̄ − (D/E)·Ī) = (2/√E)·r1,   r1 = c·Ĵ − c²·Î
  g2 = 2D/(EF)·(Ī − (D/F)·J̄) = (2/√F)·r2,   r2 = c·Î − c²·Ĵ

so each party needs only the bounded factor r of its own side from the joint
computation; 2/√E (or 2/√F) is its own. Windows whose variance is below
:data:`VARIANCE_FLOOR` (flat background) get e = 0 (or f = 0), hence c = 0 and no force,
as ANTs skips windows with sFF·sMM below its epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

VARIANCE_FLOOR = 1e-4  # per-voxel variance of intensities normalised to [0, 1] (σ = 0.01)
METRIC_NAME = "negative mean local CC² (window (2r+1)^d)"


def window_size(radius: int, dim: int) -> int:
    """n = (2r+1)^d voxels per window."""
    return (2 * radius + 1) ** dim


def box_sum(values: np.ndarray, radius: int) -> np.ndarray:
    """Σ over the (2r+1)^d window around each voxel, edges replicated (float64)."""
    size = 2 * radius + 1
    return ndimage.uniform_filter(np.asarray(values, dtype=np.float64), size=size, mode="nearest") * size**values.ndim


@dataclass(frozen=True)
class LocalStats:
    """One party's own windowed statistics of its warped image (arrays of the level shape).

    Attributes
    ----------
    warped : a (or b), intensities in [0, 1]
    variance_sum : E (or F) = Σ_W (a − μ_a)²
    inv_norm : e = 1/√(nE), 0 where E/n < VARIANCE_FLOOR
    normalized : Î = (a − μ_a)/√E, 0 where e = 0; |Î| ≤ 1
    """

    warped: np.ndarray
    variance_sum: np.ndarray
    inv_norm: np.ndarray
    normalized: np.ndarray
    radius: int

    @property
    def n(self) -> int:
        return window_size(self.radius, self.warped.ndim)

    def gradient_scale(self) -> np.ndarray:
        """2/√E = 2·√n·e: turns the joint factor r into the paper's g."""
        return 2.0 * np.sqrt(self.n) * self.inv_norm


def local_statistics(warped: np.ndarray, radius: int) -> LocalStats:
    """Windowed mean, variance sum and normalised image of one party's warped image."""
    n = window_size(radius, warped.ndim)
    sums = box_sum(warped, radius)
    variance_sum = np.maximum(box_sum(warped * warped, radius) - sums * sums / n, 0.0)
    valid = variance_sum > n * VARIANCE_FLOOR
    safe = np.where(valid, variance_sum, 1.0)
    inv_norm = np.where(valid, 1.0 / np.sqrt(n * safe), 0.0)
    centred = warped - sums / n
    normalized = np.where(valid, np.clip(centred / np.sqrt(safe), -1.0, 1.0), 0.0)
    return LocalStats(warped, variance_sum, inv_norm, normalized, radius)


def joint_covariance(warped_a: np.ndarray, warped_b: np.ndarray, radius: int) -> np.ndarray:
    """X = n·D = n·box(a·b) − box(a)·box(b): the only term that mixes the two images."""
    n = window_size(radius, warped_a.ndim)
    return n * box_sum(warped_a * warped_b, radius) - box_sum(warped_a, radius) * box_sum(warped_b, radius)


def correlation(covariance: np.ndarray, inv_norm_a: np.ndarray, inv_norm_b: np.ndarray) -> np.ndarray:
    """c = X·e·f, the local correlation coefficient (0 in flat windows)."""
    return np.clip(covariance * inv_norm_a * inv_norm_b, -1.0, 1.0)


def force_factor(corr: np.ndarray, own_normalized: np.ndarray, other_normalized: np.ndarray) -> np.ndarray:
    """r = c·(other) − c²·(own): r1 for party1 (own Î, other Ĵ), r2 for party2."""
    return corr * other_normalized - corr * corr * own_normalized


@dataclass(frozen=True)
class CCForces:
    """What the joint computation gives one party per iteration."""

    factor: np.ndarray  # r of this party's side (level shape)
    metric: float  # mean c² over the level grid (revealed to both)
    discarded: int = 0  # voxels whose revealed r failed the |r| ≤ 2 check (mpc truncation failures)


def clear_forces(own: LocalStats, other: LocalStats) -> CCForces:
    """The oracle: both parties' statistics in the clear."""
    corr = correlation(joint_covariance(own.warped, other.warped, own.radius), own.inv_norm, other.inv_norm)
    return CCForces(force_factor(corr, own.normalized, other.normalized), float(np.mean(corr * corr)))
