"""Images with their physical space, read and written through SimpleITK.

The array is kept in numpy order (z, y, x); spacing, origin and direction are in
ITK order (x, y, z) and LPS physical space, exactly as SimpleITK reports them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel
import numpy as np
import SimpleITK as sitk

from ppreg.errors import InputError

PNG_LIKE = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Grid:
    """A sampling grid in physical space (ITK conventions).

    Attributes
    ----------
    size : tuple of int, length d
        Number of voxels along x, y[, z] (ITK order).
    spacing : ndarray, shape (d,)
        Voxel size in mm.
    origin : ndarray, shape (d,)
        Physical position (mm, LPS) of voxel index 0.
    direction : ndarray, shape (d, d)
        Direction cosines; column i is the physical direction of index axis i.
    """

    size: tuple[int, ...]
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray

    @property
    def dim(self) -> int:
        return len(self.size)

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape in numpy order (z, y, x)."""
        return tuple(reversed(self.size))

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.size))

    def index_to_physical_matrix(self) -> np.ndarray:
        """Matrix D·diag(spacing) mapping an ITK index (x, y, z) to a physical offset."""
        return self.direction @ np.diag(self.spacing)

    def physical_points(self, flat_index: np.ndarray | None = None) -> np.ndarray:
        """Physical coordinates (mm), shape (N, d), of voxels given by flat numpy index.

        ``flat_index`` indexes the C-ordered array of shape ``self.shape``; None means all.
        """
        if flat_index is None:
            flat_index = np.arange(self.n_voxels)
        numpy_index = np.unravel_index(flat_index, self.shape)
        itk_index = np.stack(numpy_index[::-1], axis=1).astype(np.float64)
        return itk_index @ self.index_to_physical_matrix().T + self.origin

    def physical_to_continuous_index(self, points: np.ndarray) -> np.ndarray:
        """Continuous ITK index (x, y, z), shape (N, d), of physical points (N, d)."""
        inverse = np.linalg.inv(self.index_to_physical_matrix())
        return (points - self.origin) @ inverse.T

    def center(self) -> np.ndarray:
        """Physical centre of the grid (mm), shape (d,)."""
        middle = (np.asarray(self.size, dtype=np.float64) - 1.0) / 2.0
        return self.origin + self.index_to_physical_matrix() @ middle

    def half_extent(self) -> float:
        """Largest half-extent of the grid in mm (used to normalise coordinates)."""
        extent = (np.asarray(self.size, dtype=np.float64) - 1.0) * self.spacing
        return float(max(np.max(extent) / 2.0, 1.0))

    def to_meta(self) -> dict:
        """JSON-able description (public metadata exchanged between parties)."""
        return {
            "size": list(self.size),
            "spacing": self.spacing.tolist(),
            "origin": self.origin.tolist(),
            "direction": self.direction.ravel().tolist(),
        }

    @classmethod
    def from_meta(cls, meta: dict) -> "Grid":
        size = tuple(int(v) for v in meta["size"])
        dim = len(size)
        return cls(
            size=size,
            spacing=np.asarray(meta["spacing"], dtype=np.float64),
            origin=np.asarray(meta["origin"], dtype=np.float64),
            direction=np.asarray(meta["direction"], dtype=np.float64).reshape(dim, dim),
        )


@dataclass(frozen=True)
class Image:
    """An image: voxel values plus the grid they live on.

    Attributes
    ----------
    array : ndarray, shape grid.shape (numpy order z, y, x), float64
    grid : Grid
    """

    array: np.ndarray
    grid: Grid

    @property
    def dim(self) -> int:
        return self.grid.dim


def image_from_sitk(image: sitk.Image) -> Image:
    """Convert a scalar SimpleITK image to an :class:`Image` (float64 values)."""
    dim = image.GetDimension()
    grid = Grid(
        size=tuple(int(v) for v in image.GetSize()),
        spacing=np.asarray(image.GetSpacing(), dtype=np.float64),
        origin=np.asarray(image.GetOrigin(), dtype=np.float64),
        direction=np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim),
    )
    return Image(array=sitk.GetArrayFromImage(image).astype(np.float64), grid=grid)


def image_to_sitk(image: Image, pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
    """Convert an :class:`Image` to SimpleITK, keeping its physical space."""
    result = sitk.GetImageFromArray(image.array)
    result.SetSpacing(tuple(float(v) for v in image.grid.spacing))
    result.SetOrigin(tuple(float(v) for v in image.grid.origin))
    result.SetDirection(tuple(float(v) for v in image.grid.direction.ravel()))
    return sitk.Cast(result, pixel_type)


def read_image(path: str | os.PathLike, expect_dim: int | None = None) -> Image:
    """Read a scalar 2D or 3D image (NIfTI, PNG, MHA, ... anything SimpleITK reads).

    Colour images are converted to luminance. Raises InputError for a missing,
    unreadable, non-finite or wrongly dimensioned image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        raw = sitk.ReadImage(str(path))
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else "unreadable"
        raise InputError(f"cannot read image {path}: {first_line}") from None
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti(path)
    if raw.GetNumberOfComponentsPerPixel() > 1:
        raw = _to_luminance(raw)
    image = image_from_sitk(raw)
    image = _squeeze_singleton_3d(image)
    if image.dim not in (2, 3):
        raise InputError(f"{path}: only 2D and 3D images are supported, got {image.dim}D")
    if expect_dim is not None and image.dim != expect_dim:
        raise InputError(f"{path} is {image.dim}D but the other image is {expect_dim}D")
    if not np.all(np.isfinite(image.array)):
        raise InputError(f"{path} contains NaN or infinite values")
    if image.array.size < 4**image.dim:
        raise InputError(f"{path} is too small to register ({image.grid.size})")
    return image


def _check_nifti(path: Path) -> None:
    """NIfTI checks SimpleITK skips: it zero-fills a truncated file and reads NaN as 0.

    nibabel reads the voxels as stored, so truncation and NaN become input errors.
    """
    try:
        data = np.asanyarray(nibabel.load(str(path)).dataobj)
    except Exception as error:  # nibabel raises many types for a damaged file
        raise InputError(f"cannot read image {path}: corrupt or truncated NIfTI ({type(error).__name__})") from None
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise InputError(f"{path} contains NaN or infinite values")


def _to_luminance(raw: sitk.Image) -> sitk.Image:
    """Convert an RGB(A) image to luminance (ITU-R 601 weights) keeping its space."""
    channels = sitk.GetArrayFromImage(raw).astype(np.float64)
    weights = np.array([0.299, 0.587, 0.114])
    gray = channels[..., :3] @ weights if channels.shape[-1] >= 3 else channels[..., 0]
    result = sitk.GetImageFromArray(gray)
    result.CopyInformation(raw)
    return result


def _squeeze_singleton_3d(image: Image) -> Image:
    """Treat a 3D image with a single slice (x, y, 1) as 2D, as ANTs does."""
    if image.dim != 3 or image.grid.size[2] != 1:
        return image
    grid = Grid(
        size=image.grid.size[:2],
        spacing=image.grid.spacing[:2],
        origin=image.grid.origin[:2],
        direction=image.grid.direction[:2, :2],
    )
    return Image(array=image.array[0], grid=grid)


def is_png_like(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(PNG_LIKE)


def write_image(image: Image, path: str | os.PathLike, like: str | os.PathLike | None = None) -> Path:
    """Write ``image`` atomically (temp file in the same folder, then rename).

    PNG-like outputs are rescaled linearly to [0, 255] only if values leave that range;
    otherwise values are rounded to uint8 (so a PNG input round-trips).
    """
    path = Path(path)
    if is_png_like(path):
        values = image.array
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 255:
            values = (values - low) * (255.0 / (high - low if high > low else 1.0))
        values = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        out = sitk.GetImageFromArray(values)
        out.SetSpacing(tuple(float(v) for v in image.grid.spacing))
        out.SetOrigin(tuple(float(v) for v in image.grid.origin))
    else:
        out = image_to_sitk(image)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    write_atomically(path, lambda tmp: sitk.WriteImage(out, str(tmp)), suffix=suffix)
    return path


def write_atomically(path: Path, writer, suffix: str = "") -> None:
    """Call ``writer(temp_path)`` then rename the temp file onto ``path``.

    The temp file lives in the destination folder so the rename is atomic; on any
    failure it is removed, so no partial output is ever left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        tmp.chmod(0o666 & ~current_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def warped_output_path(prefix: str, moving_path: str | os.PathLike) -> Path:
    """ANTs-style output name: PNG-like in gives PNG out, anything else NIfTI."""
    suffix = ".png" if is_png_like(moving_path) else ".nii.gz"
    return Path(f"{prefix}warped{suffix}")
