"""ITK transform files (.tfm/.txt/.h5) through SimpleITK, so other tools read ours."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ppreg.errors import InputError
from ppreg.io.images import Grid, write_atomically


def linear_to_sitk(matrix: np.ndarray, translation: np.ndarray, center: np.ndarray, rigid: bool) -> sitk.Transform:
    """An ITK transform for W(x) = c + M(x − c) + t (Euler for rigid, Affine otherwise)."""
    dim = len(center)
    if rigid:
        transform = sitk.Euler2DTransform() if dim == 2 else sitk.Euler3DTransform()
        transform.SetCenter(tuple(float(v) for v in center))
        transform.SetMatrix(tuple(float(v) for v in np.asarray(matrix).ravel()), 1e-6)
    else:
        transform = sitk.AffineTransform(dim)
        transform.SetCenter(tuple(float(v) for v in center))
        transform.SetMatrix(tuple(float(v) for v in np.asarray(matrix).ravel()))
    transform.SetTranslation(tuple(float(v) for v in translation))
    return transform


def write_transform(transform: sitk.Transform, path: str | os.PathLike) -> Path:
    """Write an ITK transform file atomically."""
    path = Path(path)
    write_atomically(path, lambda tmp: sitk.WriteTransform(transform, str(tmp)), suffix=path.suffix)
    return path


FIELD_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd")


def read_transform(path: str | os.PathLike) -> sitk.Transform:
    """Read any transform SimpleITK reads, or a displacement-field image (``ppreg ants``'s
    warp.nii.gz, ANTs' Warp.nii.gz) as a DisplacementFieldTransform (InputError when
    missing/corrupt)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"transform not found: {path}")
    if path.name.lower().endswith(FIELD_SUFFIXES):
        return _read_displacement_field(path)
    try:
        return sitk.ReadTransform(str(path))
    except RuntimeError:
        raise InputError(f"cannot read transform {path}: not an ITK transform file") from None


def _read_displacement_field(path: Path) -> sitk.Transform:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(f"cannot read displacement field {path}") from None
    if image.GetNumberOfComponentsPerPixel() != image.GetDimension():
        raise InputError(f"{path} is not a displacement field: {image.GetNumberOfComponentsPerPixel()} "
                         f"components per voxel in {image.GetDimension()}D")
    return sitk.DisplacementFieldTransform(sitk.Cast(image, sitk.sitkVectorFloat64))


def read_transform_chain(paths) -> sitk.Transform:
    """One transform from several files in ITK order: the first is applied last to a point
    (``[affine.tfm, warp.nii.gz]`` maps x to affine(x + w(x)), as ANTs' outputs compose)."""
    transforms = [read_transform(path) for path in paths]
    if not transforms:
        raise InputError("no transform given")
    dims = {transform.GetDimension() for transform in transforms}
    if len(dims) != 1:
        raise InputError(f"the transforms mix dimensions {sorted(dims)}")
    if len(transforms) == 1:
        return transforms[0]
    composite = sitk.CompositeTransform(dims.pop())
    for transform in transforms:
        composite.AddTransform(transform)
    return composite


def read_linear_transform(path: str | os.PathLike, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matrix, translation, center) of a linear (matrix + offset) ITK transform file."""
    transform = read_transform(path)
    if transform.GetDimension() != dim:
        raise InputError(f"{path} is a {transform.GetDimension()}D transform, the images are {dim}D")
    return _flatten_linear(transform, path)


def _flatten_linear(transform: sitk.Transform, path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dim = transform.GetDimension()
    if isinstance(transform, sitk.CompositeTransform) or transform.GetName() == "CompositeTransform":
        composite = sitk.CompositeTransform(transform)
        if composite.GetNumberOfTransforms() != 1:
            raise InputError(f"{path}: expected a single linear transform, got a composite of "
                             f"{composite.GetNumberOfTransforms()}")
        transform = composite.GetNthTransform(0)
    transform = transform.Downcast()
    if not hasattr(transform, "GetMatrix"):
        raise InputError(f"{path}: {transform.GetName()} is not a linear (matrix + offset) transform")
    matrix = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(dim, dim)
    translation = np.asarray(transform.GetTranslation(), dtype=np.float64)
    center = np.asarray(transform.GetCenter(), dtype=np.float64) if hasattr(transform, "GetCenter") else np.zeros(dim)
    return matrix, translation, center


def grid_reference_image(grid: Grid) -> sitk.Image:
    """An empty SimpleITK image carrying ``grid`` (for SimpleITK filters needing a reference)."""
    reference = sitk.Image([int(v) for v in grid.size], sitk.sitkFloat32)
    reference.SetSpacing(tuple(float(v) for v in grid.spacing))
    reference.SetOrigin(tuple(float(v) for v in grid.origin))
    reference.SetDirection(tuple(float(v) for v in grid.direction.ravel()))
    return reference


def mapped_points(transform: sitk.Transform, grid: Grid) -> np.ndarray:
    """W(x) for every voxel x of ``grid``, shape (N, d), C order of ``grid.shape``.

    Evaluated by ITK (TransformToDisplacementField), so every transform type ITK
    knows (composite, B-spline, displacement field) is supported.
    """
    if transform.GetDimension() != grid.dim:
        raise InputError(f"transform is {transform.GetDimension()}D but the reference image is {grid.dim}D")
    field = sitk.TransformToDisplacementField(
        transform,
        sitk.sitkVectorFloat64,
        [int(v) for v in grid.size],
        tuple(float(v) for v in grid.origin),
        tuple(float(v) for v in grid.spacing),
        tuple(float(v) for v in grid.direction.ravel()),
    )
    displacement = sitk.GetArrayFromImage(field).reshape(-1, grid.dim)
    return grid.physical_points() + displacement


def similarity_to_sitk(rotation: np.ndarray, scale: float, translation: np.ndarray, center: np.ndarray) -> sitk.Transform:
    """A Similarity2D/3D transform for W(x) = c + s·R(x − c) + t (R a proper rotation)."""
    transform = sitk.Similarity2DTransform() if len(center) == 2 else sitk.Similarity3DTransform()
    transform.SetCenter(tuple(float(v) for v in center))
    transform.SetMatrix(tuple(float(v) for v in (scale * np.asarray(rotation)).ravel()))
    transform.SetTranslation(tuple(float(v) for v in translation))
    return transform
