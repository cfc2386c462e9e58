"""Sampling an image and its gradient at arbitrary physical points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ppreg.io.images import Image


@dataclass(frozen=True)
class GradientImage:
    """An image with its physical-space gradient images, ready for repeated sampling.

    ``gradient[k]`` is ∂I/∂x_k in intensity units per mm along physical axis k,
    stored on the image grid (numpy order).
    """

    image: Image
    gradient: tuple[np.ndarray, ...]

    @classmethod
    def from_image(cls, image: Image) -> "GradientImage":
        index_grads = np.gradient(image.array)  # numpy axis order (z, y, x), per voxel
        itk_order = np.stack(index_grads[::-1], axis=0)  # (d, ...) along x, y, z index axes
        to_index = np.linalg.inv(image.grid.index_to_physical_matrix())
        # ∇_phys = (D·S)^{-T} ∇_index
        physical = np.tensordot(to_index.T, itk_order, axes=1)
        return cls(image=image, gradient=tuple(physical))

    def sample(self, points: np.ndarray, with_gradient: bool = True):
        """Values, gradients (N, d) and inside-mask (N,) at physical points (N, d).

        Linear interpolation; points outside the image get value 0, gradient 0 and
        ``inside`` False.
        """
        cindex = self.image.grid.physical_to_continuous_index(points)
        return self.sample_coordinates(np.ascontiguousarray(cindex[:, ::-1].T), with_gradient)

    def sample_coordinates(self, coords: np.ndarray, with_gradient: bool = True):
        """Like :meth:`sample` for continuous numpy-order indices, shape (d, N)."""
        upper = np.asarray(self.image.grid.shape, dtype=np.float64)[:, None] - 1
        inside = np.all((coords >= 0) & (coords <= upper), axis=0)
        values = ndimage.map_coordinates(self.image.array, coords, order=1, mode="nearest")
        values = np.where(inside, values, 0.0)
        if not with_gradient:
            return values, None, inside
        grads = np.stack(
            [ndimage.map_coordinates(g, coords, order=1, mode="nearest") for g in self.gradient], axis=1
        )
        grads[~inside] = 0.0
        return values, grads, inside


def resample(image: Image, reference_points: np.ndarray, order: int = 1, default: float = 0.0) -> np.ndarray:
    """Values of ``image`` at physical points (N, d); ``default`` outside the image.

    ``order`` 0 is nearest neighbour (label maps), 1 linear, 3 cubic B-spline.
    """
    cindex = image.grid.physical_to_continuous_index(reference_points)
    limits = np.asarray(image.grid.size) - 1
    # ITK treats the buffer as extending half a voxel beyond the first/last centre.
    inside = np.all((cindex >= -0.5) & (cindex < limits + 0.5), axis=1)
    coords = np.clip(cindex, 0, limits)[:, ::-1].T
    if order == 0:
        coords = np.rint(coords)
    values = ndimage.map_coordinates(image.array, coords, order=order, mode="nearest")
    return np.where(inside, values, default)
