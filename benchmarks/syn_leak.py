"""What one revealed force field r1 tells party1 about party2's image (docs/privacy.md).

r1 = c·Ĵ − c²·Î at every voxel; party1 knows Î (its own normalised image) and the mean c²
(the revealed cost). Taking c ≈ ĉ = √(mean c²) everywhere gives the estimate
Ĵ_est = r1/ĉ + ĉ·Î of party2's normalised image Ĵ = (b − μ_b)/√F (a local-contrast map of
J: its edges and texture, without the local mean and scale). The figures are correlations
inside the brain mask where both windows are non-flat, against the guess party1 could make
without r1 (its own Î), on the benchmark's 2 mm pair before any update. Used by
:mod:`benchmarks.syn`.
"""

from __future__ import annotations

import numpy as np

from ppreg.io.images import Image
from ppreg.similarity.base import normalize_intensity
from ppreg.similarity.cc import clear_forces, local_statistics


def force_field_leak(fixed: Image, moving: Image, mask: np.ndarray, radius: int = 2) -> dict:
    own = local_statistics(normalize_intensity(moving.array)[0], radius)
    other = local_statistics(normalize_intensity(fixed.array)[0], radius)
    forces = clear_forces(own, other)
    c_hat = float(np.sqrt(forces.metric))
    estimate = forces.factor / c_hat + c_hat * own.normalized
    inside = mask & (own.inv_norm > 0) & (other.inv_norm > 0)

    def corr(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.corrcoef(x[inside], y[inside])[0, 1])

    return {"voxels": int(inside.sum()), "c_hat": c_hat,
            "corr_estimate_vs_Jhat": corr(estimate, other.normalized),
            "corr_r1_vs_Jhat": corr(forces.factor, other.normalized),
            "corr_own_Ihat_vs_Jhat": corr(own.normalized, other.normalized),
            "corr_estimate_vs_J": corr(estimate, other.warped),
            "corr_own_Ihat_vs_J": corr(own.normalized, other.warped)}


def leak_summary(leak: dict) -> str:
    return (f"one revealed r1 field (2 mm, before any update): party1's estimate r1/ĉ + ĉ·Î of party2's normalised "
            f"image Ĵ correlates {leak['corr_estimate_vs_Jhat']:.2f} with it inside the brain (its own Î alone: "
            f"{leak['corr_own_Ihat_vs_Jhat']:.2f}); with J's raw intensities {leak['corr_estimate_vs_J']:.2f} "
            f"(Î alone {leak['corr_own_Ihat_vs_J']:.2f})")
