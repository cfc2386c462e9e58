"""What a QC picture shows of the images: display slices, checkerboard, edge overlay.

Every function here works on one 2D display slice (rows top to bottom, columns left
to right) with values in [0, 1] once windowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ppreg.io.images import Image, image_to_sitk

CHECKER_TILES = 8  # tiles along the longer side of a panel
WINDOW_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class DisplaySlice:
    """One slice as it is shown.

    Attributes
    ----------
    name : str
        "" for a 2D image, "axial", "coronal" or "sagittal" for a 3D one.
    values : ndarray, shape (rows, cols)
    spacing : tuple of float
        Physical size (mm) of a pixel along rows and along columns.
    """

    name: str
    values: np.ndarray
    spacing: tuple[float, float]


def display_slices(image: Image) -> list[DisplaySlice]:
    """The image as shown: a 2D image as stored (row 0 on top); a 3D image reoriented to
    LPS and cut through its middle in radiological convention (patient's left on the
    right; anterior on top in the axial view, superior on top in the other two)."""
    if image.dim == 2:
        spacing = image.grid.spacing
        return [DisplaySlice("", image.array, (float(spacing[1]), float(spacing[0])))]
    oriented = sitk.DICOMOrient(image_to_sitk(image, sitk.sitkFloat64), "LPS")
    volume = sitk.GetArrayFromImage(oriented)  # (z: to superior, y: to posterior, x: to left)
    sx, sy, sz = (float(v) for v in oriented.GetSpacing())
    nz, ny, nx = volume.shape
    return [
        DisplaySlice("axial", volume[nz // 2], (sy, sx)),
        DisplaySlice("coronal", volume[:, ny // 2, :][::-1], (sz, sx)),
        DisplaySlice("sagittal", volume[:, :, nx // 2][::-1], (sz, sy)),
    ]


def intensity_window(values: np.ndarray) -> tuple[float, float]:
    """Robust display range (low, high) of a whole image: the 0.5 and 99.5 percentiles."""
    low, high = (float(v) for v in np.percentile(values, WINDOW_PERCENTILES))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    return (low, high) if high > low else (low, low + 1.0)


def windowed(values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Values mapped to [0, 1] through ``window`` and clipped."""
    low, high = window
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def fit_to_panel(section: DisplaySlice, panel: int) -> np.ndarray:
    """Resample a slice (linear) so its longer physical side spans ``panel`` pixels and
    pixels are square in mm; shape (rows, cols), both ≤ ``panel``."""
    rows, cols = section.values.shape
    extent = np.array([rows * section.spacing[0], cols * section.spacing[1]])
    out_rows, out_cols = np.maximum(np.rint(extent * panel / extent.max()), 1).astype(int)
    row_coords = (np.arange(out_rows) + 0.5) * rows / out_rows - 0.5
    col_coords = (np.arange(out_cols) + 0.5) * cols / out_cols - 0.5
    grid = np.meshgrid(row_coords, col_coords, indexing="ij")
    return ndimage.map_coordinates(section.values, grid, order=1, mode="nearest")


def checker_tile(shape: tuple[int, int]) -> int:
    """Side in pixels of a checkerboard tile for a panel of ``shape``."""
    return max(int(np.ceil(max(shape) / CHECKER_TILES)), 1)


def checkerboard(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Alternate square tiles of two same-shaped slices; the top-left tile is ``first``."""
    tile = checker_tile(first.shape)
    rows, cols = np.indices(first.shape)
    from_second = ((rows // tile + cols // tile) % 2).astype(bool)
    return np.where(from_second, second, first)


def edges(values: np.ndarray, sigma: float, high_quantile: float = 0.8) -> np.ndarray:
    """Canny-like edges of a slice, shape as ``values``, bool.

    Gaussian smoothing (``sigma`` pixels), Sobel gradient, non-maximum suppression
    across the gradient direction, then hysteresis: ridge pixels above half the high
    threshold are kept when connected to one above it (the ``high_quantile`` of the
    ridge magnitudes).
    """
    smooth = ndimage.gaussian_filter(np.asarray(values, dtype=np.float64), sigma)
    grad_rows, grad_cols = ndimage.sobel(smooth, axis=0), ndimage.sobel(smooth, axis=1)
    magnitude = np.hypot(grad_rows, grad_cols)
    ridge = magnitude * _local_maxima(magnitude, grad_rows, grad_cols)
    positive = ridge[ridge > 0]
    if positive.size == 0:
        return np.zeros(values.shape, dtype=bool)
    high = max(float(np.quantile(positive, high_quantile)), 0.05 * float(positive.max()))
    weak = ridge >= 0.5 * high
    labels, _ = ndimage.label(weak, structure=np.ones((3, 3)))
    strong_labels = np.unique(labels[ridge >= high])
    return np.isin(labels, strong_labels[strong_labels > 0])


def _local_maxima(magnitude: np.ndarray, grad_rows: np.ndarray, grad_cols: np.ndarray) -> np.ndarray:
    """Pixels whose gradient magnitude is not below either neighbour along the gradient
    direction (quantised to 0°, 45°, 90°, 135°)."""
    angle = np.rad2deg(np.arctan2(grad_rows, grad_cols)) % 180.0
    sector = np.rint(angle / 45.0).astype(int) % 4
    padded = np.pad(magnitude, 1)
    height, width = magnitude.shape
    keep = np.zeros(magnitude.shape, dtype=bool)
    for index, (d_row, d_col) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead = padded[1 + d_row:1 + d_row + height, 1 + d_col:1 + d_col + width]
        behind = padded[1 - d_row:1 - d_row + height, 1 - d_col:1 - d_col + width]
        keep |= (sector == index) & (magnitude >= ahead) & (magnitude >= behind)
    return keep


def gray_rgb(values: np.ndarray) -> np.ndarray:
    """[0, 1] values as an (rows, cols, 3) uint8 grey image."""
    grey = np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def overlay(background: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """A grey [0, 1] slice with ``mask`` pixels painted in ``colour``; (rows, cols, 3) uint8."""
    rgb = gray_rgb(background)
    rgb[mask] = colour
    return rgb
