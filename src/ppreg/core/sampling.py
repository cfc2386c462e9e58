"""Choosing which fixed-grid voxels enter the joint terms: all, URS or GMS.

Sampling is party1's decision (GMS uses the moving image's gradient, which only
party1 has). The chosen indices are sent to party2 once per level, so party2 learns
them — docs/privacy.md lists this.
"""

from __future__ import annotations

import numpy as np

from ppreg.errors import ConfigError

ALL, URS, GMS = "all", "urs", "gms"
MODES = (ALL, URS, GMS)


def choose_samples(
    mode: str,
    n_voxels: int,
    fraction: float,
    rng: np.random.Generator,
    gradient_magnitude: np.ndarray | None = None,
    eligible: np.ndarray | None = None,
) -> np.ndarray | None:
    """Flat indices (sorted, int64) of the sampled voxels, or None for all voxels.

    Parameters
    ----------
    mode : {"all", "urs", "gms"}
    n_voxels : int
        Number of voxels of the fixed level grid.
    fraction : float in (0, 1]
        Share of voxels to keep (URS/GMS).
    rng : numpy Generator
        Seeded from ``--seed``; sampling is reproducible, masks are not drawn from it.
    gradient_magnitude : ndarray, shape (n_voxels,), optional
        ‖∇I(W(x))‖ of the moving image at each fixed voxel (GMS only).
    eligible : ndarray of bool, shape (n_voxels,), optional
        Voxels that may be sampled (e.g. those mapping inside the moving image); the
        fraction applies to the eligible ones.
    """
    if mode not in MODES:
        raise ConfigError(f"sampling must be one of {', '.join(MODES)}, got {mode!r}")
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"sampling fraction must be in (0, 1], got {fraction}")
    candidates = np.arange(n_voxels) if eligible is None else np.flatnonzero(eligible)
    if len(candidates) < 16:
        candidates = np.arange(n_voxels)  # degenerate overlap: let the optimiser see everything
    count = max(16, int(round(fraction * len(candidates))))
    if mode == ALL or count >= len(candidates):
        return None if len(candidates) == n_voxels else candidates
    # One uniform key per voxel of the grid, drawn whatever is eligible, and the best keys
    # win: a voxel entering or leaving the eligible set moves at most one sample, so two
    # runs a hair apart (clear vs mpc) keep the same sample.
    keys = rng.random(n_voxels)[candidates]
    if mode == URS:
        scores = keys
    else:
        # Weighted sampling without replacement (Efraimidis & Spirakis): score log(u)/w.
        weights = np.asarray(gradient_magnitude, dtype=np.float64)[candidates]
        if np.count_nonzero(weights > 0) < count:
            # Too few edges: give flat regions a small chance so the sample is still full size.
            weights = weights + max(float(weights.max()), 1.0) * 1e-3
        with np.errstate(divide="ignore"):
            scores = np.log(np.maximum(keys, 1e-300)) / weights
    return np.sort(candidates[np.argpartition(-scores, count - 1)[:count]])
