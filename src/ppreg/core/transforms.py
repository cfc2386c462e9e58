"""Rigid and affine transforms about a centre, in normalised parameters.

A transform maps fixed-space physical points x (mm) to moving space (ITK direction):

    W(x) = c + M·(x − c) + t

Parameters are normalised so that all of them act on a comparable scale: with the
centre c and scale s (half-extent of the fixed grid, mm) and x̃ = (x − c)/s,

    W(x) = c + s·(M·x̃ + t̃),   t̃ = t / s.

*affine*: θ = [vec(M) (row-major, d·d), t̃ (d)]. *rigid*: θ = [angles (1 or 3), t̃ (d)].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIGID = "rigid"
AFFINE = "affine"


def rotation_2d(angle: float) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[cos, -sin], [sin, cos]])


def _axis_rotations(angles: np.ndarray) -> list[np.ndarray]:
    """Rotations about x, y, z (radians), each 3×3."""
    ax, ay, az = angles
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return [rx, ry, rz]


def _axis_rotation_derivatives(angles: np.ndarray) -> list[np.ndarray]:
    ax, ay, az = angles
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    drx = np.array([[0, 0, 0], [0, -sx, -cx], [0, cx, -sx]])
    dry = np.array([[-sy, 0, cy], [0, 0, 0], [-cy, 0, -sy]])
    drz = np.array([[-sz, -cz, 0], [cz, -sz, 0], [0, 0, 0]])
    return [drx, dry, drz]


def rotation_3d(angles: np.ndarray) -> np.ndarray:
    """R = Rz·Ry·Rx for angles (about x, y, z) in radians."""
    rx, ry, rz = _axis_rotations(angles)
    return rz @ ry @ rx


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """Closest proper rotation to ``matrix`` (polar decomposition)."""
    u, _, vt = np.linalg.svd(matrix)
    fix = np.eye(len(matrix))
    fix[-1, -1] = np.sign(np.linalg.det(u @ vt))
    return u @ fix @ vt


def angles_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Angles θ with rotation_2d/rotation_3d(θ) == rotation."""
    if len(rotation) == 2:
        return np.array([np.arctan2(rotation[1, 0], rotation[0, 0])])
    ay = -np.arcsin(np.clip(rotation[2, 0], -1.0, 1.0))
    ax = np.arctan2(rotation[2, 1], rotation[2, 2])
    az = np.arctan2(rotation[1, 0], rotation[0, 0])
    return np.array([ax, ay, az])


@dataclass(frozen=True)
class AffineModel:
    """A rigid or affine model on a fixed centre and scale.

    Attributes
    ----------
    kind : {"rigid", "affine"}
    dim : int, 2 or 3
    center : ndarray, shape (d,), mm
    scale : float, mm (coordinate normalisation)
    """

    kind: str
    dim: int
    center: np.ndarray
    scale: float

    @property
    def n_params(self) -> int:
        if self.kind == AFFINE:
            return self.dim * (self.dim + 1)
        return (1 if self.dim == 2 else 3) + self.dim

    def identity(self) -> np.ndarray:
        return self.params_from_matrix(np.eye(self.dim), np.zeros(self.dim))

    def matrix_translation(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(M, t) with t in mm, for W(x) = c + M(x − c) + t."""
        d = self.dim
        if self.kind == AFFINE:
            matrix = params[: d * d].reshape(d, d)
        else:
            n_angles = self.n_params - d
            angles = params[:n_angles]
            matrix = rotation_2d(angles[0]) if d == 2 else rotation_3d(angles)
        return matrix, params[-d:] * self.scale

    def params_from_matrix(self, matrix: np.ndarray, translation: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`matrix_translation` (rigid: nearest rotation)."""
        if self.kind == AFFINE:
            head = np.asarray(matrix, dtype=np.float64).ravel()
        else:
            head = angles_from_rotation(nearest_rotation(np.asarray(matrix, dtype=np.float64)))
        return np.concatenate([head, np.asarray(translation, dtype=np.float64) / self.scale])

    def params_from_transform(self, matrix: np.ndarray, translation: np.ndarray, center: np.ndarray) -> np.ndarray:
        """Parameters of an ITK-style (matrix, translation, center) transform, re-centred on ours."""
        shift = matrix @ (self.center - center) + center - self.center + translation
        return self.params_from_matrix(matrix, shift)

    def normalized_coordinates(self, points: np.ndarray) -> np.ndarray:
        """X̃ = [(x − c)/s, 1], shape (N, d+1): the public design matrix."""
        scaled = (points - self.center) / self.scale
        return np.hstack([scaled, np.ones((len(points), 1))])

    def apply(self, params: np.ndarray, points: np.ndarray) -> np.ndarray:
        """W(x) for fixed-space points (N, d) in mm."""
        matrix, translation = self.matrix_translation(params)
        return (points - self.center) @ matrix.T + self.center + translation

    def index_map(self, params: np.ndarray, moving_grid) -> np.ndarray:
        """Matrix K, shape (d, d+1), with K·[x; 1] = continuous numpy-order index (z, y, x)
        in ``moving_grid`` of W(x): one small matmul per evaluation instead of two passes."""
        matrix, translation = self.matrix_translation(params)
        to_index = np.linalg.inv(moving_grid.index_to_physical_matrix())
        linear = to_index @ matrix
        offset = to_index @ (self.center - matrix @ self.center + translation - moving_grid.origin)
        return np.hstack([linear, offset[:, None]])[::-1]

    def affine_jacobian(self, params: np.ndarray) -> np.ndarray:
        """∂θ_affine/∂θ, shape (d·(d+1), n_params): chain rule from affine to this model.

        Row order is (k, j) with k the output axis and j ∈ {x̃_0..x̃_{d−1}, 1}, matching
        the flattened per-pixel feature ∇I_k·X̃_j the metrics use.
        """
        d = self.dim
        if self.kind == AFFINE:
            return _affine_order_permutation(d)
        n_angles = self.n_params - d
        jac = np.zeros((d, d + 1, self.n_params))
        for a, dmatrix in enumerate(self._rotation_derivatives(params[:n_angles])):
            jac[:, :d, a] = dmatrix
        for k in range(d):
            jac[k, d, n_angles + k] = 1.0
        return jac.reshape(d * (d + 1), self.n_params)

    def _rotation_derivatives(self, angles: np.ndarray) -> list[np.ndarray]:
        if self.dim == 2:
            cos, sin = np.cos(angles[0]), np.sin(angles[0])
            return [np.array([[-sin, -cos], [cos, -sin]])]
        rx, ry, rz = _axis_rotations(angles)
        drx, dry, drz = _axis_rotation_derivatives(angles)
        return [rz @ ry @ drx, rz @ dry @ rx, drz @ ry @ rx]


def _affine_order_permutation(dim: int) -> np.ndarray:
    """Map the (k, j) feature order onto the affine θ = [vec(M), t̃] order."""
    n = dim * (dim + 1)
    perm = np.zeros((n, n))
    for k in range(dim):
        for j in range(dim + 1):
            row = k * (dim + 1) + j
            col = k * dim + j if j < dim else dim * dim + k
            perm[row, col] = 1.0
    return perm
