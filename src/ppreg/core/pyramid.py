"""Gaussian multiresolution pyramid, ANTs style (``-f 4x2x1 -s 2x1x0vox``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ppreg.errors import ConfigError
from ppreg.io.images import Grid, Image


@dataclass(frozen=True)
class LevelSpec:
    """One pyramid level: integer shrink factor and Gaussian sigma in full-resolution voxels."""

    shrink: int
    sigma: float
    iterations: int


def parse_schedule(text: str, name: str, cast=float) -> list:
    """Parse an ANTs-style ``AxBxC`` string (``vox`` suffix allowed for sigmas)."""
    cleaned = str(text).strip().lower().removesuffix("vox")
    try:
        values = [cast(part) for part in cleaned.split("x")]
    except ValueError:
        raise ConfigError(f"--{name} must look like 4x2x1, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"--{name} must be non-negative numbers like 4x2x1, got {text!r}")
    return values


def build_schedule(levels: str, smoothing: str, iterations: str) -> list[LevelSpec]:
    """Combine the three schedule strings into level specs (coarse to fine)."""
    shrinks = parse_schedule(levels, "levels", int)
    sigmas = parse_schedule(smoothing, "smoothing", float)
    iters = parse_schedule(iterations, "iterations", int)
    if any(s < 1 for s in shrinks):
        raise ConfigError(f"--levels shrink factors must be ≥ 1, got {levels!r}")
    if not len(shrinks) == len(sigmas) == len(iters):
        raise ConfigError(
            f"--levels {levels}, --smoothing {smoothing} and --iterations {iterations} "
            "must have the same number of levels"
        )
    return [LevelSpec(s, g, i) for s, g, i in zip(shrinks, sigmas, iters)]


def shrink_grid(grid: Grid, factor: int) -> Grid:
    """Grid of an image shrunk by ``factor`` (ITK ShrinkImageFilter geometry: same centre)."""
    size = tuple(max(1, n // factor) for n in grid.size)
    offset = grid.index_to_physical_matrix() @ _first_sample(grid.size, size, factor)
    return Grid(size=size, spacing=grid.spacing * factor, origin=grid.origin + offset, direction=grid.direction)


def _first_sample(size, shrunk_size, factor: int) -> np.ndarray:
    """Continuous input index (ITK order) of shrunk voxel 0, so both grids share their centre."""
    return ((np.asarray(size) - 1) - (np.asarray(shrunk_size) - 1) * factor) / 2.0


def pyramid_level(image: Image, shrink: int, sigma: float) -> Image:
    """Smooth ``image`` by ``sigma`` (full-resolution voxels) then shrink it by ``shrink``."""
    smoothed = ndimage.gaussian_filter(image.array, sigma, mode="nearest") if sigma > 0 else image.array
    if shrink == 1:
        return Image(array=np.ascontiguousarray(smoothed, dtype=np.float64), grid=image.grid)
    grid = shrink_grid(image.grid, shrink)
    first = _first_sample(image.grid.size, grid.size, shrink)[::-1]  # numpy order
    axes = [np.arange(n) * shrink + start for n, start in zip(grid.shape, first)]
    coords = np.meshgrid(*axes, indexing="ij")
    values = ndimage.map_coordinates(smoothed, coords, order=1, mode="nearest")
    return Image(array=values, grid=grid)
