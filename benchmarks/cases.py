"""Known-transform cases on bundled real data, and the schedules the benchmarks use.

A case is a fixed image, a moving image made from it by a known affine transform
(``ppreg.synthetic``), that transform as ITK maps fixed points to moving points, and a
mask of the fixed grid inside which displacement errors are measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ppreg.core.pyramid import pyramid_level
from ppreg.io.images import Grid, Image, read_image
from ppreg.io.transforms import linear_to_sitk
from ppreg.synthetic import known_affine, warp_with

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class Schedule:
    """ANTs-style pyramid: shrink factors, sigmas (voxels) and iteration caps per level."""

    levels: str
    smoothing: str
    iterations: str

    def shrink_factors(self) -> list[int]:
        return [int(v) for v in self.levels.split("x")]

    def sigmas(self) -> list[float]:
        return [float(v) for v in self.smoothing.split("x")]

    def iteration_caps(self) -> list[int]:
        return [int(v) for v in self.iterations.split("x")]

    def as_dict(self) -> dict:
        return {"levels": self.levels, "smoothing": self.smoothing, "iterations": self.iterations}


FULL_SCHEDULE = Schedule("4x2x1", "2x1x0", "100x50x25")
QUICK_SCHEDULE_3D = Schedule("2x1", "1x0", "50x25")
QUICK_SCHEDULE_2D = Schedule("4x2x1", "2x1x0", "30x15x8")


@dataclass(frozen=True)
class KnownCase:
    """A registration problem with a known answer.

    Attributes
    ----------
    name : str
    fixed, moving : Image
    truth : sitk.Transform, maps fixed-space points (mm) to moving space
    mask : ndarray of bool, shape fixed.grid.shape
    unit : str, "mm" or "px" (the unit of displacement errors)
    description : str
    """

    name: str
    fixed: Image
    moving: Image
    truth: sitk.Transform
    mask: np.ndarray
    unit: str
    description: str

    @property
    def n_params(self) -> int:
        """Parameters of the affine model: d·(d+1)."""
        return self.fixed.dim * (self.fixed.dim + 1)


def mni_3d(quick: bool, moving_padding: int = 0) -> KnownCase:
    """MNI152 T1 at 2 mm (4 mm when quick), rotated 8°, shifted (4, −3, 2) mm, scaled 5 %.

    ``moving_padding`` > 0 makes the moving image on a grid larger by that many voxels on
    every side, so that no fixed voxel maps outside the moving image at the true transform.
    """
    fixed = read_image(DATA_DIR / "mni_t1_2mm.nii.gz")
    mask = read_image(DATA_DIR / "mni_mask_2mm.nii.gz", expect_dim=3)
    if quick:
        fixed, mask = _halved(fixed), _halved(mask)
    description = f"MNI152 T1 {'4 mm (halved)' if quick else '2 mm'}, {'×'.join(map(str, fixed.grid.size))}"
    if moving_padding:
        description += f", moving image padded by {moving_padding} voxels per side"
    return _known_case("mni_t1_3d", fixed, mask.array > 0.5, (4.0, -3.0, 2.0), "mm", description, moving_padding)


def r16_2d(quick: bool) -> KnownCase:
    """ANTs r16 slice (256², 1 px), rotated 8°, shifted (4, −3) px, scaled 5 % (same size when quick)."""
    fixed = read_image(DATA_DIR / "r16.png")
    mask = read_image(DATA_DIR / "r16_mask.png", expect_dim=2)
    return _known_case("r16_2d", fixed, mask.array > 0, (4.0, -3.0), "px",
                       f"ANTs r16 slice, {'×'.join(map(str, fixed.grid.size))}")


def _known_case(name, fixed: Image, mask: np.ndarray, translation, unit: str, description: str,
                moving_padding: int = 0) -> KnownCase:
    matrix, translation, center = known_affine(fixed.dim, 8.0, translation, 0.05, fixed.grid.center())
    moving = warp_with(_zero_padded(fixed, moving_padding), matrix, translation, center)
    truth = linear_to_sitk(matrix, translation, center, rigid=False)
    return KnownCase(name, fixed, moving, truth, mask, unit,
                     f"{description}; known transform: 8° rotation, translation {tuple(translation)} {unit}, 5 % scaling")


def _zero_padded(image: Image, padding: int) -> Image:
    """``image`` on a grid ``padding`` voxels larger on every side, zeros outside."""
    if padding == 0:
        return image
    grid = image.grid
    origin = grid.origin - grid.index_to_physical_matrix() @ np.full(grid.dim, float(padding))
    padded_grid = Grid(size=tuple(n + 2 * padding for n in grid.size), spacing=grid.spacing, origin=origin,
                       direction=grid.direction)
    return Image(array=np.pad(image.array, padding), grid=padded_grid)


def _halved(image: Image) -> Image:
    """Smooth by 1 voxel and shrink by 2 (the pyramid's own geometry)."""
    return pyramid_level(image, 2, 1.0)
