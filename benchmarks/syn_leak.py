"""What one revealed force field r1 tells party1 about party2's image (docs/privacy.md).

r1 = c·Ĵ − c²·Î at every voxel; party1 knows Î (its own normalised image) and the mean c²
(the revealed cost). Taking c ≈ ĉ = √(mean c²) everywhere gives the estimate
Ĵ_est = r1/ĉ + ĉ·Î of party2's normalised image Ĵ = (b − μ_b)/√F (a local-contrast map of
J: its edges and texture, without the local mean and scale). The figures are correlations
inside the brain mask where both windows are non-flat, against the guess party1 could make
without r1 (its own Î), before any update and then over the iterations of a clear
one-level SyN run from the identity: each iteration's estimate against that iteration's Ĵ,
beside the guess without r1 (Î, which grows more like Ĵ as the images align). Two pairs:
the benchmark's 2 mm brain and its deformed copy (one subject: c is high and even), and
the 2D slices r64 → r16 (two subjects: c varies in sign and size, and this estimate fails;
a cleverer attacker is not ruled out). Used by :mod:`benchmarks.syn`.
"""

from __future__ import annotations

import numpy as np

from ppreg.io.images import Image
from ppreg.registration.syn_half import SynHalf, SynLevel
from ppreg.similarity.base import normalize_intensity
from ppreg.similarity.cc import CCForces, LocalStats, clear_forces, local_statistics


def force_field_leak(fixed: Image, moving: Image, mask: np.ndarray, radius: int = 2, iterations: int = 20) -> dict:
    own = local_statistics(normalize_intensity(moving.array)[0], radius)
    other = local_statistics(normalize_intensity(fixed.array)[0], radius)
    forces = clear_forces(own, other)
    estimate = _estimate(forces, own)
    inside = mask & (own.inv_norm > 0) & (other.inv_norm > 0)
    return {"voxels": int(inside.sum()), "c_hat": float(np.sqrt(forces.metric)),
            "corr_estimate_vs_Jhat": _corr(estimate, other.normalized, inside),
            "corr_r1_vs_Jhat": _corr(forces.factor, other.normalized, inside),
            "corr_own_Ihat_vs_Jhat": _corr(own.normalized, other.normalized, inside),
            "corr_estimate_vs_J": _corr(estimate, other.warped, inside),
            "corr_own_Ihat_vs_J": _corr(own.normalized, other.warped, inside),
            "over_iterations": _over_iterations(fixed, moving, mask, radius, iterations)}


def _estimate(forces: CCForces, own: LocalStats) -> np.ndarray:
    c_hat = max(float(np.sqrt(forces.metric)), 1e-6)
    return forces.factor / c_hat + c_hat * own.normalized


def _corr(x: np.ndarray, y: np.ndarray, inside: np.ndarray) -> float:
    return float(np.corrcoef(x[inside], y[inside])[0, 1])


def _over_iterations(fixed: Image, moving: Image, mask: np.ndarray, radius: int, iterations: int = 20) -> dict:
    """Each iteration's estimate of Ĵ, and Î, against that iteration's Ĵ in a clear
    one-level SyN run (step 0.25 voxel, σ_update 1.732)."""
    level = SynLevel(0, 1, 0.0, radius, 0.25, 1.732, 0.0)
    halves = (SynHalf(Image(array=normalize_intensity(moving.array)[0], grid=moving.grid), fixed.grid),
              SynHalf(Image(array=normalize_intensity(fixed.array)[0], grid=fixed.grid), fixed.grid))
    for half in halves:
        half.start_level(level)
    single, baseline = [], []
    for _ in range(iterations):
        own, other = (half.statistics() for half in halves)
        forces = clear_forces(own, other)
        inside = mask & (own.inv_norm > 0) & (other.inv_norm > 0)
        single.append(_corr(_estimate(forces, own), other.normalized, inside))
        baseline.append(_corr(own.normalized, other.normalized, inside))
        halves[0].update(forces)
        halves[1].update(clear_forces(other, own))
    return {"iterations": iterations, "corr_estimate_vs_Jhat": single, "corr_own_Ihat_vs_Jhat": baseline}


def leak_summary(case: str, leak: dict) -> str:
    runs = leak["over_iterations"]
    return (f"{case}: from one revealed r1 field before any update, party1's estimate r1/ĉ + ĉ·Î of party2's normalised "
            f"image Ĵ correlates {leak['corr_estimate_vs_Jhat']:.2f} with it inside the brain (its own Î alone: "
            f"{leak['corr_own_Ihat_vs_Jhat']:.2f}); with J's raw intensities {leak['corr_estimate_vs_J']:.2f} "
            f"(Î alone {leak['corr_own_Ihat_vs_J']:.2f}); at iteration {runs['iterations']} of a clear run, the "
            f"estimate from that iteration's r1: {runs['corr_estimate_vs_Jhat'][-1]:.2f} (Î alone "
            f"{runs['corr_own_Ihat_vs_Jhat'][-1]:.2f})")
