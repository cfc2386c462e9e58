"""B-spline (free-form deformation) registration driver, party1's side.

Forward-additive Gauss-Newton / Levenberg-Marquardt on
E(φ) = (1/N)·Σ (I(W(x)) − J(x))² + λ·Σ_k φ_kᵀ·L·φ_k,  W(x) = A(x + Σ_c β_c(x)·φ_c),
with A the initial affine (identity by default) and L the membrane energy of the
control grid. The only joint term is Σ_x β_c(x)·∇Ĩ_k(x)·J(x) and Σ I(W)·J
(similarity/ssd_bspline.py). The control grid doubles between pyramid levels; the
coefficients are carried over by an exact least-squares fit (the finer spline space
contains the coarser one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from ppreg.core.bspline import ControlGrid
from ppreg.core.interpolation import GradientImage
from ppreg.core.pyramid import LevelSpec, pyramid_level
from ppreg.core.sampling import GMS, choose_samples
from ppreg.core.transforms import AffineModel
from ppreg.io.images import Grid, Image
from ppreg.io.transforms import linear_to_sitk
from ppreg.registration.affine import IterationCallback
from ppreg.registration.history import LevelHistory, IterationRecord, LevelRecord
from ppreg.secure.session import FixedPartyProxy, traffic_between
from ppreg.similarity.base import LevelRequest, normalize_intensity
from ppreg.similarity.ssd_bspline import bspline_selection

LM_INITIAL_DAMPING = 1e-3
LM_MAX_DAMPING = 1e8
DEFAULT_GRID_VOXELS = 5  # the paper: one control point every 4–5 pixels
RELATIVE_DECREASE = 1e-4  # stop a level once an accepted step gains less than this share of the cost


@dataclass(frozen=True)
class BSplineSettings:
    """Party1's choices. ``grid_spacing`` in mm at the finest level; ``regularization`` λ
    weighs the membrane energy (mm⁻² units: λ = 0 means none)."""

    levels: tuple[LevelSpec, ...]
    grid_spacing: float
    regularization: float = 0.0
    sampling: str = "all"
    sampling_fraction: float = 0.1
    seed: int = 0
    convergence: float = 1e-3
    initial: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


@dataclass
class LinearMap:
    """x ↦ c + M(x − c) + t (the initial affine, applied after the deformation)."""

    matrix: np.ndarray
    translation: np.ndarray
    center: np.ndarray

    @classmethod
    def identity(cls, dim: int) -> "LinearMap":
        return cls(np.eye(dim), np.zeros(dim), np.zeros(dim))

    def apply(self, points: np.ndarray) -> np.ndarray:
        return (points - self.center) @ self.matrix.T + self.center + self.translation

    def is_identity(self) -> bool:
        return np.allclose(self.matrix, np.eye(len(self.matrix))) and np.allclose(self.translation, 0)

    def after(self, deformable: sitk.Transform) -> sitk.Transform:
        """``deformable`` alone, or the composite [this affine, deformable]: ITK applies the
        last-added first, x → deformable(x) → affine, the ANTs order."""
        if self.is_identity():
            return deformable
        composite = sitk.CompositeTransform(deformable.GetDimension())
        composite.AddTransform(linear_to_sitk(self.matrix, self.translation, self.center, rigid=False))
        composite.AddTransform(deformable)
        return composite


@dataclass
class BSplineResult(LevelHistory):
    control: ControlGrid
    coefficients: np.ndarray  # (P, d), mm
    initial: LinearMap
    levels: list[LevelRecord] = field(default_factory=list)
    n_parameters: int = 0

    def sitk_transform(self) -> sitk.Transform:
        """The ITK transform: the B-spline alone, or composite [initial affine, B-spline]."""
        return self.initial.after(self.control.to_sitk(self.coefficients))

    def mapped(self, points: np.ndarray) -> np.ndarray:
        return self.initial.apply(points + self.control.displacement(self.coefficients, points))


def register_bspline(
    moving: Image, proxy: FixedPartyProxy, settings: BSplineSettings, on_iteration: IterationCallback | None = None
) -> BSplineResult:
    """Register ``moving`` (party1's) to party2's fixed image with a B-spline deformation."""
    fixed_grid = proxy.hello(moving.dim, "bspline")
    initial = LinearMap.identity(moving.dim) if settings.initial is None else LinearMap(*settings.initial)
    spacing = settings.grid_spacing if settings.grid_spacing > 0 else DEFAULT_GRID_VOXELS * float(fixed_grid.spacing.min())
    control = ControlGrid.for_spacing(fixed_grid, spacing, len(settings.levels) - 1)
    result = BSplineResult(control, np.zeros((control.n_points, moving.dim)), initial)
    normalized = Image(array=normalize_intensity(moving.array)[0], grid=moving.grid)
    rng = np.random.default_rng(settings.seed)
    for index, spec in enumerate(settings.levels):
        if index > 0:
            _refine(result, fixed_grid)
        moving_level = GradientImage.from_image(pyramid_level(normalized, spec.shrink, spec.sigma))
        level = _BSplineLevel(index, spec, result, moving_level, proxy, settings, on_iteration)
        result.coefficients = level.run(rng)
        result.levels.append(level.record)
    result.n_parameters = result.coefficients.size
    return result


def _refine(result: BSplineResult, fixed_grid: Grid) -> None:
    """Double the control grid, keeping the deformation (least-squares fit on a dense set)."""
    finer = result.control.refined(fixed_grid)
    points = fixed_grid.physical_points()
    result.coefficients = finer.fit(points, result.control.displacement(result.coefficients, points))
    result.control = finer


def _solve(system: sparse.spmatrix, right: np.ndarray) -> np.ndarray:
    """Solve the (symmetric positive definite) LM system: Jacobi-preconditioned conjugate
    gradients, which beats a sparse LU here by an order of magnitude; an inexact GN step
    is fine because every step is checked against the cost."""
    system = system.tocsr()
    preconditioner = sparse.diags(1.0 / np.maximum(system.diagonal(), 1e-300))
    solution, _ = sparse_linalg.cg(system, right, rtol=1e-8, maxiter=500, M=preconditioner)
    return solution


class _BSplineLevel:
    def __init__(self, index, spec, result, moving_level, proxy, settings, on_iteration):
        self.index, self.spec, self.result = index, spec, result
        self.moving_level, self.proxy, self.settings, self.on_iteration = moving_level, proxy, settings, on_iteration
        self.control = result.control
        self.grid = proxy.level_grid(spec.shrink)
        self.dim = self.grid.dim

    def run(self, rng: np.random.Generator) -> np.ndarray:
        started, before = time.perf_counter(), self.proxy.snapshot()
        all_points = self.grid.physical_points()
        sample_index = choose_samples(
            self.settings.sampling, self.grid.n_voxels, self.settings.sampling_fraction, rng,
            self._gradient_magnitude(all_points) if self.settings.sampling == GMS else None)
        self.points = all_points if sample_index is None else all_points[sample_index]
        self.basis = self.control.basis_matrix(self.points)
        placeholder = AffineModel("affine", self.dim, self.grid.center(), self.grid.half_extent())
        request = LevelRequest("bspline", self.spec.shrink, self.spec.sigma, placeholder,
                               params={"control_grid": self.control.to_meta()})
        self.summary = self.proxy.start_level(self.index, request, sample_index)
        self.record = LevelRecord(self.index, self.spec.shrink, self.spec.sigma, len(self.points),
                                  time.perf_counter() - started, traffic_between(self.proxy.snapshot(), before),
                                  revealed_per_evaluation=self.control.n_points * self.dim + 1)
        self.regularizer = sparse.block_diag([self.control.regularizer()] * self.dim).tocsr()
        return self._levenberg_marquardt(self.result.coefficients)

    def _gradient_magnitude(self, points: np.ndarray) -> np.ndarray:
        _, gradient, _ = self.moving_level.sample(self.result.mapped(points))
        return np.linalg.norm(gradient, axis=1)

    def _evaluate(self, coefficients: np.ndarray):
        started, before = time.perf_counter(), self.proxy.snapshot()
        deformed = self.points + self.basis @ coefficients
        warped, gradient, _ = self.moving_level.sample(self.result.initial.apply(deformed))
        gradient = gradient @ self.result.initial.matrix  # ∇Ĩ = Mᵀ∇I, rows are points
        features = np.hstack([gradient, warped[:, None]])
        n_control = self.control.n_points
        product = self.proxy.product(features, bspline_selection(self.dim, n_control))
        n = len(warped)
        flat = coefficients.T.ravel()  # ITK order: all x, then y (, z)
        data = (warped @ warped - 2.0 * product[self.dim, n_control] + self.summary["sum_fixed_squared"][0]) / n
        cost = data + self.settings.regularization * flat @ (self.regularizer @ flat)
        columns = [sparse.diags(gradient[:, k]) @ self.basis for k in range(self.dim)]
        steepest = sparse.hstack(columns).tocsr()  # (N, d·P)
        moving_term = steepest.T @ warped
        gradient_flat = (moving_term - product[: self.dim, :n_control].ravel()) / n \
            + self.settings.regularization * (self.regularizer @ flat)
        hessian = (steepest.T @ steepest) / n + self.settings.regularization * self.regularizer
        record = IterationRecord(self.index, float(cost), time.perf_counter() - started,
                                 traffic_between(self.proxy.snapshot(), before))
        self.record.iterations.append(record)
        if self.on_iteration is not None:
            self.on_iteration(self.record, record)
        return cost, gradient_flat, hessian.tocsc()

    def _levenberg_marquardt(self, coefficients: np.ndarray) -> np.ndarray:
        tolerance_mm = self.settings.convergence * float(np.min(self.grid.spacing))
        damping = LM_INITIAL_DAMPING
        cost, gradient, hessian = self._evaluate(coefficients)
        while len(self.record.iterations) < self.spec.iterations and damping < LM_MAX_DAMPING:
            diagonal = hessian.diagonal()
            # Control points barely touched by image edges have a near-zero diagonal: the
            # mean term keeps their steps bounded (Levenberg) while edges get Marquardt scaling.
            system = hessian + sparse.diags(damping * (diagonal + max(diagonal.mean(), 1e-30)))
            step = -_solve(system, gradient)
            trial = coefficients + step.reshape(self.dim, -1).T
            trial_cost, trial_gradient, trial_hessian = self._evaluate(trial)
            if trial_cost < cost:
                decrease = (cost - trial_cost) / cost
                coefficients, cost, gradient, hessian = trial, trial_cost, trial_gradient, trial_hessian
                damping = max(damping / 10.0, 1e-9)
                if np.max(np.abs(step)) < tolerance_mm or decrease < RELATIVE_DECREASE:
                    break
            else:
                self.record.iterations[-1].accepted = False
                damping *= 10.0
        return coefficients
