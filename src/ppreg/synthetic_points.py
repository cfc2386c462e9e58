"""Known-transform point-set cases generated in code with a seed (never stored as files)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ppreg.io.images import Image


def surface_landmarks(mask: Image, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct boundary voxels of ``mask`` (> 0), drawn by ``rng``.

    Returns
    -------
    ndarray, shape (count, d)
        Physical voxel centres in mm (LPS), in the order drawn.
    """
    inside = mask.array > 0
    boundary = np.flatnonzero(inside & ~ndimage.binary_erosion(inside))
    if count > boundary.size:
        raise ValueError(f"the mask has only {boundary.size} boundary voxels, {count} requested")
    return mask.grid.physical_points(rng.choice(boundary, size=count, replace=False))


def move_points(fixed: np.ndarray, matrix: np.ndarray, translation: np.ndarray, center: np.ndarray,
                noise_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Moving points x_i = T(y_i) + ε_i with T(y) = c + A(y − c) + t (fixed → moving, as ITK)
    and ε_i ~ N(0, noise_mm²·I), drawn by ``rng``."""
    moved = (fixed - center) @ np.asarray(matrix).T + center + translation
    return moved + rng.normal(scale=noise_mm, size=fixed.shape)
