"""One party's half of greedy symmetric SyN: its own image, its own map, its own update.

Both parties run this same code on their own data. A party's map φ(x) = L(x + u(x))
takes a point x of the midpoint grid (the fixed grid, shrunk per level) to its own image
space; L is party1's initial affine (identity for party2) and u a displacement field on
the midpoint grid. Each iteration:

  1. warp its own image: a = I∘φ on the midpoint grid (never the other party's image);
  2. local statistics of a (:func:`~ppreg.similarity.cc.local_statistics`);
  3. the joint engine returns r, this side's CC force factor (the only joint step);
  4. force g·∇a with g = (2/√E)·r, Gaussian-smoothed (σ_update), scaled so its largest
     displacement is ``step`` voxels, composed as φ ← φ∘(Id + v);
  5. optionally the total field is Gaussian-smoothed (σ_total).

Fields are carried to the next (finer) level by linear interpolation in physical space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ppreg.core.displacement import (compose, grid_coordinates, identity_field, image_gradient, invert,
                                     norm_in_voxels, resample_field, smooth_field)
from ppreg.core.pyramid import pyramid_level, shrink_grid
from ppreg.errors import ProtocolError
from ppreg.io.images import Grid, Image
from ppreg.registration.bspline import LinearMap
from ppreg.similarity.cc import CCForces, LocalStats, local_statistics

MAX_RADIUS = 8


@dataclass(frozen=True)
class SynLevel:
    """Public parameters of one level, sent by party1 to party2 (σ's in voxels of the level
    grid for the fields, in full-resolution voxels for the image pyramid, as ANTs)."""

    index: int
    shrink: int
    sigma: float
    radius: int
    step: float
    sigma_update: float
    sigma_total: float

    def to_meta(self) -> dict:
        return {"index": self.index, "shrink": self.shrink, "sigma": self.sigma, "radius": self.radius,
                "step": self.step, "sigma_update": self.sigma_update, "sigma_total": self.sigma_total}

    @classmethod
    def from_meta(cls, meta: dict) -> "SynLevel":
        try:
            level = cls(int(meta["index"]), int(meta["shrink"]), float(meta["sigma"]), int(meta["radius"]),
                        float(meta["step"]), float(meta["sigma_update"]), float(meta["sigma_total"]))
        except (KeyError, TypeError, ValueError):
            raise ProtocolError("party1 sent a malformed SyN level") from None
        level.check()
        return level

    def check(self) -> None:
        finite = np.all(np.isfinite([self.sigma, self.step, self.sigma_update, self.sigma_total]))
        if not (finite and self.index >= 0 and self.shrink >= 1 and 1 <= self.radius <= MAX_RADIUS
                and 0 < self.step <= 10 and self.sigma >= 0 and self.sigma_update >= 0 and self.sigma_total >= 0):
            raise ProtocolError(f"SyN level parameters out of range: {self.to_meta()}")

    def grid(self, fixed_grid: Grid) -> Grid:
        return fixed_grid if self.shrink == 1 else shrink_grid(fixed_grid, self.shrink)


class SynHalf:
    """One party's image, map and update rule (module docstring)."""

    def __init__(self, image: Image, fixed_grid: Grid, initial: LinearMap | None = None):
        self.image, self.fixed_grid = image, fixed_grid
        self.initial = initial if initial is not None else LinearMap.identity(image.dim)
        self.grid: Grid | None = None
        self.field: np.ndarray | None = None
        self.inverse: np.ndarray | None = None  # kept per level (warm start of the next inversion)

    def start_level(self, level: SynLevel) -> Grid:
        grid = level.grid(self.fixed_grid)
        if self.field is None:
            self.field = identity_field(grid)
        else:
            self.field = resample_field(self.field, self.grid, grid)
            self.inverse = resample_field(self.inverse, self.grid, grid) if self.inverse is not None else None
        self.grid, self.level = grid, level
        self.level_image = pyramid_level(self.image, level.shrink, level.sigma)
        self._sampling = self._sampling_maps()
        return grid

    def image_coordinates(self) -> np.ndarray:
        """φ(x) for every voxel x of the level grid, as numpy-order continuous indices (d, N)
        of this party's level image: one affine map of (index of x, u(x)), set per level."""
        field_map, fixed_part = self._sampling
        coords = field_map @ self.field.reshape(-1, self.grid.dim).T
        coords += fixed_part
        return np.ascontiguousarray(coords[::-1])

    def _sampling_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """(G, K·x + k) with image index = K·(grid index x) + G·u + k, ITK order (x, y, z); the
        second, (d, N), is the same for every iteration of the level."""
        image_grid, linear = self.level_image.grid, self.initial
        to_image = np.linalg.inv(image_grid.index_to_physical_matrix())
        field_map = to_image @ linear.matrix
        index_map = field_map @ self.grid.index_to_physical_matrix()
        origin = linear.apply(self.grid.origin[None, :])[0]
        fixed_part = index_map @ grid_coordinates(self.grid)[::-1]
        fixed_part += (to_image @ (origin - image_grid.origin))[:, None]
        return field_map, fixed_part

    def statistics(self) -> LocalStats:
        """Warp this party's own image onto the midpoint grid and compute its local statistics."""
        coords = self.image_coordinates()
        values = ndimage.map_coordinates(self.level_image.array, coords, order=1, mode="nearest")
        self.warped = values.reshape(self.grid.shape)
        self.stats = local_statistics(self.warped, self.level.radius)
        return self.stats

    def update(self, forces: CCForces) -> float:
        """Apply one greedy step from this side's force factor; returns the step's peak (voxels)."""
        gain = self.stats.gradient_scale() * forces.factor
        force = gain[..., None] * image_gradient(self.warped, self.grid)
        velocity = smooth_field(force, self.level.sigma_update)
        peak = float(np.max(norm_in_voxels(velocity, self.grid)))
        if peak <= 0 or not np.isfinite(peak):
            return 0.0
        velocity *= self.level.step / peak
        self.field = smooth_field(compose(self.field, velocity, self.grid), self.level.sigma_total)
        return self.level.step

    def end_level(self) -> float:
        """Invert the level's field (warm-started); returns the residual in voxels."""
        self.inverse, self.residual = invert(self.field, self.grid, self.inverse)
        return self.residual

    def final_fields(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(u, u⁻¹, inversion residual in voxels) on the full-resolution fixed grid."""
        if self.grid is None:
            raise ProtocolError("no SyN level was run")
        field, inverse = self.field, self.inverse
        if self.level.shrink == 1 and inverse is not None:  # end_level inverted it on this grid already
            return field, inverse, self.residual
        if self.level.shrink != 1:
            field = resample_field(field, self.grid, self.fixed_grid)
            inverse = None if inverse is None else resample_field(inverse, self.grid, self.fixed_grid)
        inverse, residual = invert(field, self.fixed_grid, inverse)
        return field, inverse, residual
