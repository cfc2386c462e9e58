"""Cubic B-spline free-form deformations on ITK's control-point grid.

ppreg's B-spline transform is ITK's ``BSplineTransform`` (order 3): a transform domain
(origin, physical size, direction) divided into a mesh; the coefficient grid has
mesh + 3 points per axis with spacing h = size/mesh and origin domain_origin − D·h.
A point x maps to x + Σ_c β_c(x)·φ_c, where β_c is a tensor product of cubic B-splines
and only 4^d coefficients touch each point. Points outside the domain do not move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from ppreg.io.images import Grid
from ppreg.similarity.mi import cubic_bspline

SUPPORT = 4  # control points per axis touching a point (cubic)


@dataclass(frozen=True)
class ControlGrid:
    """The coefficient grid of an ITK BSplineTransform of order 3.

    Attributes
    ----------
    origin : ndarray (d,), mm — position of coefficient index 0
    spacing : ndarray (d,), mm
    size : tuple of int (d,) — mesh size + 3 per axis (ITK order x, y, z)
    direction : ndarray (d, d)
    """

    origin: np.ndarray
    spacing: np.ndarray
    size: tuple[int, ...]
    direction: np.ndarray

    @property
    def dim(self) -> int:
        return len(self.size)

    @property
    def n_points(self) -> int:
        return int(np.prod(self.size))

    @property
    def mesh_size(self) -> tuple[int, ...]:
        return tuple(n - 3 for n in self.size)

    @property
    def domain_origin(self) -> np.ndarray:
        return self.origin + self.direction @ self.spacing

    @property
    def domain_size(self) -> np.ndarray:
        return self.spacing * np.asarray(self.mesh_size)

    @classmethod
    def covering(cls, grid: Grid, mesh_size) -> "ControlGrid":
        """A grid whose domain is the voxel-edge bounding box of ``grid``."""
        mesh = np.maximum(np.asarray(mesh_size, dtype=int), 1)
        domain_origin = grid.origin - grid.direction @ (0.5 * grid.spacing)
        domain_size = np.asarray(grid.size) * grid.spacing
        spacing = domain_size / mesh
        return cls(origin=domain_origin - grid.direction @ spacing, spacing=spacing,
                   size=tuple(int(n) + 3 for n in mesh), direction=grid.direction.copy())

    @classmethod
    def for_spacing(cls, grid: Grid, spacing_mm: float, refinements: int) -> "ControlGrid":
        """The coarsest grid of a schedule ending near ``spacing_mm`` after ``refinements`` doublings."""
        extent = np.asarray(grid.size) * grid.spacing
        final_mesh = np.maximum(np.rint(extent / spacing_mm), 2 ** refinements)
        coarse = np.maximum(np.rint(final_mesh / 2**refinements), 1).astype(int)
        return cls.covering(grid, coarse)

    def refined(self, grid: Grid) -> "ControlGrid":
        """Same domain, mesh doubled (half the spacing)."""
        return ControlGrid.covering(grid, 2 * np.asarray(self.mesh_size))

    def to_meta(self) -> dict:
        return {"origin": self.origin.tolist(), "spacing": self.spacing.tolist(), "size": list(self.size),
                "direction": self.direction.ravel().tolist()}

    @classmethod
    def from_meta(cls, meta: dict) -> "ControlGrid":
        size = tuple(int(v) for v in meta["size"])
        return cls(origin=np.asarray(meta["origin"], float), spacing=np.asarray(meta["spacing"], float),
                   size=size, direction=np.asarray(meta["direction"], float).reshape(len(size), len(size)))

    def basis(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Control-point indices and weights touching each point.

        Returns
        -------
        columns : ndarray (N, 4^d) int64 — flat coefficient index (ITK order, x fastest)
        weights : ndarray (N, 4^d) float64 — β_c(x); all zero outside the domain
        """
        d = self.dim
        continuous = ((points - self.origin) @ np.linalg.inv(self.direction).T) / self.spacing  # (N, d)
        start = np.floor(continuous).astype(np.int64) - 1
        offsets = np.array(np.meshgrid(*[np.arange(SUPPORT)] * d, indexing="ij")).reshape(d, -1).T  # (4^d, d)
        index = start[:, None, :] + offsets[None, :, :]  # (N, 4^d, d)
        weights = np.prod(cubic_bspline(continuous[:, None, :] - index), axis=2)
        inside = np.all((continuous >= 1) & (continuous < np.asarray(self.size) - 2), axis=1)
        weights[~inside] = 0.0
        index = np.clip(index, 0, np.asarray(self.size) - 1)
        strides = np.cumprod((1,) + self.size[:-1])
        return index @ strides, weights

    def basis_matrix(self, points: np.ndarray) -> sparse.csr_matrix:
        """β as a sparse matrix (N × n_points)."""
        columns, weights = self.basis(points)
        rows = np.repeat(np.arange(len(points)), columns.shape[1])
        return sparse.csr_matrix((weights.ravel(), (rows, columns.ravel())), shape=(len(points), self.n_points))

    def displacement(self, coefficients: np.ndarray, points: np.ndarray) -> np.ndarray:
        """u(x) = Σ β_c(x) φ_c, shape (N, d); ``coefficients`` shape (n_points, d)."""
        columns, weights = self.basis(points)
        return np.einsum("ns,nsk->nk", weights, coefficients[columns])

    def regularizer(self) -> sparse.csr_matrix:
        """Membrane energy of the coefficients: Σ over grid neighbours ‖φ_a − φ_b‖²/h²,
        as a sparse Laplacian L (n_points × n_points); energy = Σ_k φ_kᵀ L φ_k."""
        n = self.n_points
        laplacian = sparse.csr_matrix((n, n))
        for axis in range(self.dim):
            shape = self.size[::-1]  # numpy order of the flat index (x fastest)
            flat = np.arange(n).reshape(shape)
            numpy_axis = self.dim - 1 - axis
            a = np.take(flat, range(shape[numpy_axis] - 1), axis=numpy_axis).ravel()
            b = np.take(flat, range(1, shape[numpy_axis]), axis=numpy_axis).ravel()
            difference = sparse.csr_matrix(
                (np.concatenate([np.ones(len(a)), -np.ones(len(b))]),
                 (np.concatenate([np.arange(len(a))] * 2), np.concatenate([a, b]))), shape=(len(a), n))
            laplacian = laplacian + (difference.T @ difference) / self.spacing[axis] ** 2
        return laplacian.tocsr()

    def fit(self, points: np.ndarray, displacement: np.ndarray) -> np.ndarray:
        """Least-squares coefficients (n_points, d) reproducing ``displacement`` at ``points``."""
        basis = self.basis_matrix(points)
        normal = (basis.T @ basis + 1e-8 * sparse.identity(self.n_points)).tocsc()
        solve = sparse_linalg.factorized(normal)
        return np.stack([solve(basis.T @ displacement[:, k]) for k in range(self.dim)], axis=1)

    def to_sitk(self, coefficients: np.ndarray) -> sitk.BSplineTransform:
        """The ITK BSplineTransform with these coefficients (n_points, d)."""
        transform = sitk.BSplineTransform(self.dim, 3)
        transform.SetTransformDomainOrigin(tuple(float(v) for v in self.domain_origin))
        transform.SetTransformDomainPhysicalDimensions(tuple(float(v) for v in self.domain_size))
        transform.SetTransformDomainMeshSize([int(v) for v in self.mesh_size])
        transform.SetTransformDomainDirection(tuple(float(v) for v in self.direction.ravel()))
        transform.SetParameters(tuple(float(v) for v in coefficients.T.ravel()))
        return transform

