"""Metric math: analytic gradients against finite differences, joint terms against direct sums.

SSD is inverse-compositional: b = Σ S·(I(W) − J) with S = ∇J·∂W/∂Δ at the identity.
It is the negative gradient, at Δ = 0, of E(Δ) = ½ Σ [J(W(x; Δ)) − I(W(x; θ))]² with
respect to the increment Δ (the Gauss-Newton step is Δ = H⁻¹·b). MI's gradient is
checked against central differences of MI(θ) itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from conftest import bundled_image
from ppreg.core.interpolation import GradientImage
from ppreg.core.pyramid import pyramid_level
from ppreg.core.transforms import AffineModel
from ppreg.io.images import Image
from ppreg.similarity.base import normalize_intensity
from ppreg.similarity.mi import (
    ParzenScale,
    cubic_bspline,
    fixed_bins,
    mi_features,
    mi_fixed_operand,
    mi_selection,
    mi_value_and_gradient,
)
from ppreg.similarity.ssd import ssd_features, ssd_fixed_operand, ssd_step
from ppreg.synthetic import known_affine, warp_with

BINS = 32
FD_STEP = 1e-4  # in normalised parameters: ~0.01 mm at the scale of these images
MIN_COSINE = 0.99


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def central_difference(function, params: np.ndarray, step: float = FD_STEP) -> np.ndarray:
    return np.array([(function(params + step * e) - function(params - step * e)) / (2 * step)
                     for e in np.eye(len(params))])


@dataclass(frozen=True)
class MetricProblem:
    """Smoothed, normalised level images and the interior sample points of the fixed one."""

    fixed: Image
    moving: GradientImage
    model: AffineModel
    sample_index: np.ndarray
    points: np.ndarray
    params: np.ndarray


def interior_voxels(shape: tuple[int, ...], margin: int) -> np.ndarray:
    """Flat indices of voxels at least ``margin`` voxels from every border."""
    index = np.indices(shape).reshape(len(shape), -1)
    keep = np.all([(axis >= margin) & (axis < n - margin) for axis, n in zip(index, shape)], axis=0)
    return np.flatnonzero(keep)


def level_image(image: Image, shrink: int) -> Image:
    return pyramid_level(Image(normalize_intensity(image.array)[0], image.grid), shrink, 2.0)


@functools.lru_cache(maxsize=None)
def level_pair(dim: int) -> tuple[Image, Image]:
    """(fixed, moving) level images: real slices r16/r64 in 2D, the MNI T1 and a warped copy in 3D."""
    if dim == 2:
        return level_image(bundled_image("r16.png"), 2), level_image(bundled_image("r64.png"), 2)
    fixed = level_image(bundled_image("mni_t1_2mm.nii.gz"), 3)
    return fixed, warp_with(fixed, *known_affine(3, 5.0, (3.0, -2.0, 1.0), 0.03, fixed.grid.center()))


def metric_problem(dim: int, kind: str) -> MetricProblem:
    fixed_level, moving_level = level_pair(dim)
    model = AffineModel(kind, dim, fixed_level.grid.center(), fixed_level.grid.half_extent())
    sample_index = interior_voxels(fixed_level.grid.shape, 3)
    params = model.identity() + np.random.default_rng(dim).normal(scale=0.02, size=model.n_params)
    return MetricProblem(fixed_level, GradientImage.from_image(moving_level), model, sample_index,
                         fixed_level.grid.physical_points(sample_index), params)


PROBLEMS = [pytest.param((dim, kind), id=f"{dim}d-{kind}") for dim in (2, 3) for kind in ("affine", "rigid")]


@pytest.fixture(scope="module", params=PROBLEMS)
def problem(request) -> MetricProblem:
    return metric_problem(*request.param)


# --- SSD ------------------------------------------------------------------------------

def test_ssd_gauss_newton_vector_is_the_negative_increment_gradient(problem):
    model, points = problem.model, problem.points
    warped, _, _ = problem.moving.sample(model.apply(problem.params, points), with_gradient=False)
    operand = ssd_fixed_operand(problem.fixed, model, problem.sample_index)
    step = ssd_step(warped, operand.left_product(ssd_features(warped)), operand.summary)
    fixed_gradient = GradientImage.from_image(problem.fixed)

    def increment_energy(delta):
        fixed_values, _, _ = fixed_gradient.sample(model.apply(model.identity() + delta, points), with_gradient=False)
        return 0.5 * np.sum((fixed_values - warped) ** 2)

    numeric = central_difference(increment_energy, np.zeros(model.n_params))
    assert cosine(step.gradient, -numeric) >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(step.gradient), np.linalg.norm(numeric), rtol=1e-2)


def test_ssd_cost_and_hessian_from_the_joint_product(problem):
    """The revealed product gives the exact mean squared difference; H = SᵀS."""
    model = problem.model
    warped, _, _ = problem.moving.sample(model.apply(problem.params, problem.points), with_gradient=False)
    operand = ssd_fixed_operand(problem.fixed, model, problem.sample_index)
    step = ssd_step(warped, operand.left_product(ssd_features(warped)), operand.summary)
    fixed_values = problem.fixed.array.ravel()[problem.sample_index]
    assert step.cost == pytest.approx(np.mean((warped - fixed_values) ** 2), rel=1e-10)
    steepest = operand.dense_matrix()[:, :-1]
    np.testing.assert_allclose(operand.summary["hessian"], steepest.T @ steepest)
    np.testing.assert_allclose(step.gradient, steepest.T @ (warped - fixed_values), rtol=1e-9, atol=1e-9)


# --- MI -------------------------------------------------------------------------------

def mi_and_gradient(problem: MetricProblem, params: np.ndarray, operand) -> tuple[float, np.ndarray]:
    """MI and dMI/dθ through the clear operand (the oracle engine's left_product)."""
    model = problem.model
    warped, gradient, inside = problem.moving.sample(model.apply(params, problem.points))
    image = problem.moving.image.array
    scale = ParzenScale(low=float(image.min()), span=float(np.ptp(image)), n_bins=BINS)
    product = operand.left_product(mi_features(warped, gradient, inside, scale, model.scale))
    value, gradient_affine = mi_value_and_gradient(product, len(warped), BINS, model.dim)
    return value, model.affine_jacobian(params).T @ gradient_affine


def test_mi_gradient_matches_finite_differences(problem):
    operand = mi_fixed_operand(problem.fixed, problem.model, problem.sample_index, BINS)
    value, analytic = mi_and_gradient(problem, problem.params, operand)
    numeric = central_difference(lambda theta: mi_and_gradient(problem, theta, operand)[0], problem.params)
    assert value > 0.05
    assert cosine(analytic, numeric) >= MIN_COSINE
    assert 0.8 <= np.linalg.norm(analytic) / np.linalg.norm(numeric) <= 1.25


def test_mi_factored_operand_equals_its_dense_matrix(problem):
    """Clear engine (left_product) and secure engines (dense_matrix) see the same G."""
    operand = mi_fixed_operand(problem.fixed, problem.model, problem.sample_index[::7], BINS)
    features = np.random.default_rng(0).normal(size=(operand.shape[0], 5))
    np.testing.assert_allclose(operand.left_product(features), features.T @ operand.dense_matrix(), atol=1e-9)
    assert operand.max_abs() == pytest.approx(np.max(np.abs(operand.dense_matrix())))


def test_mi_joint_histogram_is_the_parzen_histogram(problem):
    """P(r, t) = (1/N) Σ ψ(r − η(I(W(x))))·[t(x) = t]; samples outside the moving image count as 0."""
    model = problem.model
    operand = mi_fixed_operand(problem.fixed, model, problem.sample_index, BINS)
    warped, gradient, inside = problem.moving.sample(model.apply(problem.params, problem.points))
    image = problem.moving.image.array
    scale = ParzenScale(low=float(image.min()), span=float(np.ptp(image)), n_bins=BINS)
    product = operand.left_product(mi_features(warped, gradient, inside, scale, model.scale))
    selection = mi_selection(BINS, model.dim)
    joint = np.where(selection, product, 0.0)[:BINS, model.dim * BINS:] / len(warped)
    weights = cubic_bspline(np.arange(BINS)[None, :] - scale.position(np.where(inside, warped, 0.0))[:, None])
    fixed_index = fixed_bins(problem.fixed.array.ravel(), BINS)[problem.sample_index]
    direct = np.zeros((BINS, BINS))
    np.add.at(direct.T, fixed_index, weights)
    np.testing.assert_allclose(joint, direct / len(warped), atol=1e-12)
    assert joint.sum() == pytest.approx(1.0)


def test_mi_is_higher_for_the_aligned_image_than_for_a_shuffled_one():
    fixed = level_image(bundled_image("r16.png"), 2)
    model = AffineModel("affine", 2, fixed.grid.center(), fixed.grid.half_extent())
    points = fixed.grid.physical_points()
    operand = mi_fixed_operand(fixed, model, None, BINS)
    shuffled = Image(np.random.default_rng(0).permutation(fixed.array.ravel()).reshape(fixed.array.shape), fixed.grid)

    def mutual_information(moving: Image) -> float:
        warped, gradient, inside = GradientImage.from_image(moving).sample(points)
        scale = ParzenScale(low=float(moving.array.min()), span=float(np.ptp(moving.array)), n_bins=BINS)
        product = operand.left_product(mi_features(warped, gradient, inside, scale, model.scale))
        return mi_value_and_gradient(product, len(warped), BINS, 2)[0]

    aligned, random = mutual_information(fixed), mutual_information(shuffled)
    assert aligned > 1.0 and random < 0.1 * aligned
