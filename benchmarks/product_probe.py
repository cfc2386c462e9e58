"""Time one engine's joint product alone (no interpolation, no optimiser), at a given N.

Opens a level exactly as the affine SSD driver does (same request, same sampled voxels)
and calls the product a few times with party1's features F = I(x) at the identity.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from ppreg.core.transforms import AffineModel
from ppreg.io.images import Image
from ppreg.secure.runtime import in_process_session
from ppreg.secure.session import traffic_between
from ppreg.similarity.base import LevelRequest, normalize_intensity


def time_ssd_product(fixed: Image, moving: Image, pet: str, sample_index: np.ndarray | None, repeats: int = 5) -> dict:
    """Median seconds and bytes of the SSD joint product Fᵀ·[S, J] at full resolution.

    Parameters
    ----------
    fixed, moving : Image
        On the same grid (the moving image is sampled at the fixed voxels).
    pet : str
        Engine name, e.g. ``"clear"`` or ``"mpc"``.
    sample_index : ndarray of int64 or None
        Flat indices of the sampled voxels (None: all).
    """
    model = AffineModel("affine", fixed.dim, fixed.grid.center(), fixed.grid.half_extent())
    request = LevelRequest("ssd", 1, 0.0, model)
    values = normalize_intensity(moving.array)[0].ravel()
    features = (values if sample_index is None else values[sample_index])[:, None]
    selection = np.ones((1, model.n_params + 1), dtype=bool)
    seconds, traffic = [], []
    with in_process_session(fixed, pet) as proxy:
        proxy.hello(fixed.dim, "affine")
        proxy.start_level(0, request, sample_index)
        for _ in range(repeats):
            started, before = time.perf_counter(), proxy.snapshot()
            proxy.product(features, selection)
            seconds.append(time.perf_counter() - started)
            traffic.append(traffic_between(proxy.snapshot(), before).as_dict())
        proxy.close()
    return {"seconds": statistics.median(seconds), "seconds_all": seconds, "bytes": traffic[-1], "n": len(features)}
