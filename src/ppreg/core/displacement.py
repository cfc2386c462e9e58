"""Dense displacement fields on a grid: sampling, composition, inversion, ITK export.

A field is an array of shape ``grid.shape + (d,)`` (numpy voxel order, then the ITK
physical components x, y[, z] in mm), the layout of a SimpleITK vector image's array.
It stands for the map x ↦ x + u(x) from the grid's physical points.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ppreg.errors import InputError
from ppreg.io.images import Grid


def identity_field(grid: Grid) -> np.ndarray:
    """The zero displacement on ``grid``."""
    return np.zeros(grid.shape + (grid.dim,))


def numpy_coordinates(grid: Grid, points: np.ndarray) -> np.ndarray:
    """Continuous numpy-order indices (d, N) of physical points (N, d) in ``grid``."""
    return np.ascontiguousarray(grid.physical_to_continuous_index(points)[:, ::-1].T)


def grid_coordinates(grid: Grid) -> np.ndarray:
    """Numpy-order indices (d, N) of every voxel of ``grid`` (C order), as floats (read-only:
    one array per grid shape, shared by every SyN iteration on that grid)."""
    return _indices(tuple(grid.shape))


@lru_cache(maxsize=4)
def _indices(shape: tuple[int, ...]) -> np.ndarray:
    indices = np.indices(shape, dtype=np.float64).reshape(len(shape), -1)
    indices.flags.writeable = False
    return indices


def index_offsets(field: np.ndarray, grid: Grid) -> np.ndarray:
    """A field (mm) as numpy-order index displacements, shape (d, N)."""
    to_index = np.linalg.inv(grid.index_to_physical_matrix())
    return (field.reshape(-1, grid.dim) @ to_index.T)[:, ::-1].T


def sample_at(field: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """u at numpy-order continuous indices (d, N), linear, edge values beyond; shape (N, d)."""
    return np.stack([ndimage.map_coordinates(field[..., k], coords, order=1, mode="nearest")
                     for k in range(field.shape[-1])], axis=1)


def sample_field(field: np.ndarray, grid: Grid, points: np.ndarray) -> np.ndarray:
    """u at physical points (N, d), linear, edge values beyond the grid; shape (N, d)."""
    return sample_at(field, numpy_coordinates(grid, points))


def compose(outer: np.ndarray, inner: np.ndarray, grid: Grid) -> np.ndarray:
    """The field of (Id + outer) ∘ (Id + inner): inner(x) + outer(x + inner(x))."""
    coords = grid_coordinates(grid) + index_offsets(inner, grid)
    return inner + sample_at(outer, coords).reshape(inner.shape)


def invert(field: np.ndarray, grid: Grid, initial: np.ndarray | None = None, iterations: int = 50,
           tolerance_vox: float = 0.01) -> tuple[np.ndarray, float]:
    """The field v with (Id + u)∘(Id + v) = Id, by the fixed-point iteration v ← −u(x + v).

    Converges for fields whose Jacobian stays away from 0 (diffeomorphic, as SyN's are).
    Returns (v, largest change of the last iteration ‖Δv‖ in voxels).
    """
    inverse = -field if initial is None else initial.copy()
    base = grid_coordinates(grid)
    spacing = float(np.min(grid.spacing))
    residual = np.inf
    for _ in range(iterations):
        update = -sample_at(field, base + index_offsets(inverse, grid)).reshape(field.shape)
        residual = float(np.max(np.linalg.norm(update - inverse, axis=-1))) / spacing if update.size else 0.0
        inverse = update
        if residual < tolerance_vox:
            break
    return inverse, residual


def resample_field(field: np.ndarray, source: Grid, target: Grid) -> np.ndarray:
    """The same displacement (mm) evaluated on another grid (pyramid level change): linear,
    edge values beyond the source. Target and source indices are related by one affine map,
    so each component is one ``affine_transform`` (no coordinate arrays)."""
    to_source = np.linalg.inv(source.index_to_physical_matrix()) @ target.index_to_physical_matrix()
    offset = np.linalg.solve(source.index_to_physical_matrix(), target.origin - source.origin)
    matrix, shift = to_source[::-1, ::-1], offset[::-1]  # numpy axis order
    return np.stack([ndimage.affine_transform(field[..., k], matrix, shift, output_shape=target.shape, order=1,
                                              mode="nearest") for k in range(field.shape[-1])], axis=-1)


def smooth_field(field: np.ndarray, sigma_vox: float) -> np.ndarray:
    """Gaussian smoothing of each component (σ in voxels), zero beyond the grid as ANTs'
    displacement-field smoothing, which keeps the boundary from drifting."""
    if sigma_vox <= 0:
        return field
    spatial = (sigma_vox,) * (field.ndim - 1) + (0.0,)
    return ndimage.gaussian_filter(field, spatial, mode="constant")


def image_gradient(values: np.ndarray, grid: Grid) -> np.ndarray:
    """Physical gradient (intensity per mm) of an image on ``grid``, shape grid.shape + (d,)."""
    index_gradient = np.stack(np.gradient(values)[::-1], axis=-1)  # ∂/∂ index x, y[, z]
    to_index = np.linalg.inv(grid.index_to_physical_matrix())
    return index_gradient @ to_index  # ∇_phys = (D·S)^{-T} ∇_index, rows are voxels


def norm_in_voxels(field: np.ndarray, grid: Grid) -> np.ndarray:
    """‖u‖ in voxel units (per component spacing), shape grid.shape."""
    in_index = field @ np.linalg.inv(grid.index_to_physical_matrix()).T
    return np.linalg.norm(in_index, axis=-1)


def to_sitk(field: np.ndarray, grid: Grid) -> sitk.Image:
    """A sitkVectorFloat64 image with ``grid``'s geometry (an ITK displacement field)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(field, dtype=np.float64), isVector=True)
    image.SetSpacing(tuple(float(v) for v in grid.spacing))
    image.SetOrigin(tuple(float(v) for v in grid.origin))
    image.SetDirection(tuple(float(v) for v in grid.direction.ravel()))
    return image


def to_transform(field: np.ndarray, grid: Grid) -> sitk.DisplacementFieldTransform:
    """ITK's DisplacementFieldTransform for x ↦ x + u(x) (linear interpolation)."""
    return sitk.DisplacementFieldTransform(to_sitk(field, grid))


def from_sitk(image: sitk.Image) -> tuple[np.ndarray, Grid]:
    """(field, grid) of an ITK displacement-field image."""
    if image.GetNumberOfComponentsPerPixel() != image.GetDimension():
        raise InputError(f"a displacement field needs {image.GetDimension()} components per voxel, "
                         f"got {image.GetNumberOfComponentsPerPixel()}")
    dim = image.GetDimension()
    grid = Grid(size=tuple(image.GetSize()), spacing=np.asarray(image.GetSpacing(), dtype=np.float64),
                origin=np.asarray(image.GetOrigin(), dtype=np.float64),
                direction=np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim))
    return sitk.GetArrayFromImage(image).astype(np.float64), grid
