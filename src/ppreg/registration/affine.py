"""Rigid/affine registration driver (party1): pyramid loop + optimiser.

SSD runs inverse-compositional Levenberg-Marquardt (Baker & Matthews): the joint term
per iteration is Σ I(W)·[S, J] with S party2's. MI runs L-BFGS-B on Mattes MI with the
paper's Parzen-window joint histogram and its derivative as joint terms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import SimpleITK as sitk
from scipy import optimize

from ppreg.core.interpolation import GradientImage
from ppreg.core.pyramid import LevelSpec, pyramid_level
from ppreg.core.sampling import GMS, choose_samples
from ppreg.core.transforms import AffineModel
from ppreg.errors import ConfigError
from ppreg.io.images import Image
from ppreg.io.transforms import linear_to_sitk
from ppreg.registration.history import LevelHistory, IterationRecord, LevelRecord
from ppreg.secure.session import FixedPartyProxy, traffic_between
from ppreg.similarity.base import LevelRequest, normalize_intensity
from ppreg.similarity.mi import ParzenScale, mi_features, mi_selection, mi_value_and_gradient
from ppreg.similarity.ssd import ssd_features, ssd_step

LM_INITIAL_DAMPING = 1e-3
LM_MAX_DAMPING = 1e8
OVERLAP_MARGIN = 1.0  # voxels of the moving level image


@dataclass(frozen=True)
class AffineSettings:
    """Everything party1 decides about an affine registration.

    ``convergence`` is in voxels of the current level: a level stops once an accepted
    update moves no sampled point by more than that.
    """

    levels: tuple[LevelSpec, ...]
    transform: str = "affine"
    metric: str = "ssd"
    sampling: str = "all"
    sampling_fraction: float = 0.1
    bins: int = 32
    seed: int = 0
    convergence: float = 1e-3
    initial: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (matrix, translation, center)


@dataclass
class AffineResult(LevelHistory):
    model: AffineModel
    params: np.ndarray
    levels: list[LevelRecord] = field(default_factory=list)

    def matrix_translation(self) -> tuple[np.ndarray, np.ndarray]:
        return self.model.matrix_translation(self.params)

    def sitk_transform(self) -> sitk.Transform:
        """Euler2D/3D for rigid, AffineTransform otherwise, centred on the model centre."""
        matrix, translation = self.matrix_translation()
        return linear_to_sitk(matrix, translation, self.model.center, rigid=self.model.kind == "rigid")


IterationCallback = Callable[[LevelRecord, IterationRecord], None]


def register_affine(
    moving: Image, proxy: FixedPartyProxy, settings: AffineSettings, on_iteration: IterationCallback | None = None
) -> AffineResult:
    """Register ``moving`` (party1's) to party2's fixed image behind ``proxy``."""
    if settings.transform not in ("rigid", "affine"):
        raise ConfigError(f"transform must be rigid or affine, got {settings.transform!r}")
    fixed_grid = proxy.hello(moving.dim, "affine")
    model = AffineModel(settings.transform, moving.dim, fixed_grid.center(), fixed_grid.half_extent())
    params = model.identity() if settings.initial is None else model.params_from_transform(*settings.initial)
    normalized = Image(array=normalize_intensity(moving.array)[0], grid=moving.grid)
    rng = np.random.default_rng(settings.seed)
    result = AffineResult(model=model, params=params)
    for index, spec in enumerate(settings.levels):
        moving_level = GradientImage.from_image(pyramid_level(normalized, spec.shrink, spec.sigma))
        level = _LevelRun(index, spec, model, moving_level, proxy, settings, on_iteration)
        params = level.run(params, rng)
        result.levels.append(level.record)
    result.params = params
    return result


def _bounding_box_corners(points: np.ndarray) -> np.ndarray:
    """The 2^d corners of the axis-aligned box around ``points`` (N, d)."""
    low, high = points.min(axis=0), points.max(axis=0)
    choices = np.array(np.meshgrid(*[[0, 1]] * points.shape[1], indexing="ij")).reshape(points.shape[1], -1).T
    return np.where(choices == 1, high, low)


class _LevelRun:
    """One pyramid level: sampling, level setup with party2, optimiser iterations."""

    def __init__(self, index, spec, model, moving_level, proxy, settings, on_iteration):
        self.index, self.spec, self.model = index, spec, model
        self.moving_level, self.proxy, self.settings = moving_level, proxy, settings
        self.on_iteration = on_iteration
        self.grid = proxy.level_grid(spec.shrink)
        self.tolerance_mm = settings.convergence * float(np.min(self.grid.spacing))

    def run(self, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        started, before = time.perf_counter(), self.proxy.snapshot()
        all_points = self.grid.physical_points()
        sample_index = choose_samples(
            self.settings.sampling, self.grid.n_voxels, self.settings.sampling_fraction, rng,
            self._gradient_magnitude(params, all_points) if self.settings.sampling == GMS else None,
            eligible=self._overlap(params, all_points),
        )
        self.points = all_points if sample_index is None else all_points[sample_index]
        self.points_h = np.vstack([self.points.T, np.ones(len(self.points))])  # (d+1, N), for index_map
        self.corners = _bounding_box_corners(self.points)
        request = LevelRequest(self.settings.metric, self.spec.shrink, self.spec.sigma, self.model, self.settings.bins)
        self.summary = self.proxy.start_level(self.index, request, sample_index)
        self.record = LevelRecord(self.index, self.spec.shrink, self.spec.sigma, len(self.points),
                                  time.perf_counter() - started, traffic_between(self.proxy.snapshot(), before))
        if self.settings.metric == "ssd":
            return self._gauss_newton(params)
        return self._lbfgs_mi(params)

    def _sample_moving(self, params: np.ndarray, with_gradient: bool = True):
        coords = self.model.index_map(params, self.moving_level.image.grid) @ self.points_h
        return self.moving_level.sample_coordinates(coords, with_gradient)

    def _overlap(self, params: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Fixed voxels mapping inside the moving image, at least OVERLAP_MARGIN voxels from
        its border, at the level's starting transform. Samples are drawn from these only
        (like ITK, which drops points outside the moving image), so the few that leave
        the image during the level are the only ones counted as zero."""
        index = self.moving_level.image.grid.physical_to_continuous_index(self.model.apply(params, points))
        upper = np.asarray(self.moving_level.image.grid.size) - 1 - OVERLAP_MARGIN
        return np.all((index >= OVERLAP_MARGIN) & (index <= upper), axis=1)

    def _gradient_magnitude(self, params: np.ndarray, points: np.ndarray) -> np.ndarray:
        _, gradient, _ = self.moving_level.sample(self.model.apply(params, points))
        return np.linalg.norm(gradient, axis=1)

    def _timed(self, evaluate, params):
        """Run one joint evaluation, recording its time and traffic."""
        started, before = time.perf_counter(), self.proxy.snapshot()
        value = evaluate(params)
        metric = value[0] if isinstance(value, tuple) else value.cost
        record = IterationRecord(self.index, float(metric), time.perf_counter() - started,
                                 traffic_between(self.proxy.snapshot(), before))
        self.record.iterations.append(record)
        if self.on_iteration is not None:
            self.on_iteration(self.record, record)
        return value

    # --- SSD: inverse-compositional Levenberg-Marquardt -------------------------------
    def _ssd_evaluate(self, params):
        warped, _, _ = self._sample_moving(params, with_gradient=False)
        selection = np.ones((1, self.model.n_params + 1), dtype=bool)
        product = self.proxy.product(ssd_features(warped), selection)
        return ssd_step(warped, product, self.summary)

    def _gauss_newton(self, params: np.ndarray) -> np.ndarray:
        hessian = self.summary["hessian"]
        damping_base = np.diag(np.diag(hessian)) + 1e-12 * np.eye(len(hessian))
        damping = LM_INITIAL_DAMPING
        current = self._timed(self._ssd_evaluate, params)
        while len(self.record.iterations) < self.spec.iterations and damping < LM_MAX_DAMPING:
            delta = np.linalg.solve(hessian + damping * damping_base, current.gradient)
            trial_params = self._compose_inverse(params, delta)
            trial = self._timed(self._ssd_evaluate, trial_params)
            if trial.cost < current.cost:
                self.record.iterations[-1].accepted = True
                params, current = trial_params, trial
                damping = max(damping / 10.0, 1e-9)
                if self._displacement_mm(delta) < self.tolerance_mm:
                    break
            else:
                self.record.iterations[-1].accepted = False
                damping *= 10.0
        return params

    def _compose_inverse(self, params: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """W(θ) ∘ W(Δ)⁻¹ (inverse-compositional update)."""
        matrix, translation = self.model.matrix_translation(params)
        step_matrix, step_translation = self.model.matrix_translation(self.model.identity() + delta)
        combined = matrix @ np.linalg.inv(step_matrix)
        return self.model.params_from_matrix(combined, translation - combined @ step_translation)

    def _displacement_mm(self, delta: np.ndarray) -> float:
        """Largest displacement caused by the increment Δ over the samples' bounding box
        (an affine displacement is largest at a corner)."""
        step_matrix, step_translation = self.model.matrix_translation(self.model.identity() + delta)
        moved = (self.corners - self.model.center) @ (step_matrix - np.eye(self.model.dim)).T + step_translation
        return float(np.max(np.linalg.norm(moved, axis=1)))

    # --- MI: L-BFGS-B ------------------------------------------------------------------
    def _mi_evaluate(self, params):
        warped, gradient, inside = self._sample_moving(params)
        image = self.moving_level.image.array
        scale = ParzenScale(low=float(image.min()), span=float(np.ptp(image)) or 1.0, n_bins=self.settings.bins)
        features = mi_features(warped, gradient, inside, scale, self.model.scale)
        selection = mi_selection(self.settings.bins, self.model.dim)
        product = self.proxy.product(features, selection)
        value, gradient_affine = mi_value_and_gradient(product, len(warped), self.settings.bins, self.model.dim)
        gradient_model = self.model.affine_jacobian(params).T @ gradient_affine
        return -value, -gradient_model

    def _lbfgs_mi(self, params: np.ndarray) -> np.ndarray:
        budget = max(self.spec.iterations, 1)
        outcome = optimize.minimize(
            lambda theta: self._timed(self._mi_evaluate, theta), params, jac=True, method="L-BFGS-B",
            options={"maxfun": budget, "maxiter": budget, "ftol": 1e-9, "gtol": 1e-7},
        )
        return np.asarray(outcome.x, dtype=np.float64)
