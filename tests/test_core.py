"""Core math party1 and party2 run locally: pyramid, interpolation, transforms, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import OBLIQUE_DIRECTION
from ppreg.core.interpolation import GradientImage, resample
from ppreg.core.pyramid import build_schedule, pyramid_level, shrink_grid
from ppreg.core.sampling import choose_samples
from ppreg.core.transforms import (
    AffineModel,
    angles_from_rotation,
    nearest_rotation,
    rotation_2d,
    rotation_3d,
)
from ppreg.errors import ConfigError
from ppreg.io.images import Grid, Image, image_from_sitk

def oblique_grid(size: tuple[int, ...]) -> Grid:
    """A grid with anisotropic spacing, an offset origin and (3D) oblique directions."""
    dim = len(size)
    spacing = np.array([2.0, 1.5, 3.0][:dim])
    origin = np.array([10.0, -20.0, 5.0][:dim])
    direction = OBLIQUE_DIRECTION if dim == 3 else rotation_2d(0.3)
    return Grid(size=size, spacing=spacing, origin=origin, direction=direction)


def sitk_image_on(grid: Grid) -> sitk.Image:
    image = sitk.Image([int(n) for n in grid.size], sitk.sitkFloat32)
    image.SetSpacing(tuple(grid.spacing))
    image.SetOrigin(tuple(grid.origin))
    image.SetDirection(tuple(grid.direction.ravel()))
    return image


def ramp_image(grid: Grid, slope: np.ndarray, offset: float = 3.0) -> Image:
    """I(x) = slope · x + offset in physical space (mm)."""
    values = grid.physical_points() @ slope + offset
    return Image(array=values.reshape(grid.shape), grid=grid)


# --- pyramid --------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(80, 96, 80), (40, 36)])
@pytest.mark.parametrize("factor", [2, 4])
def test_shrunk_grid_matches_itk_shrink_when_sizes_divide(size, factor):
    grid = oblique_grid(size)
    itk = image_from_sitk(sitk.Shrink(sitk_image_on(grid), [factor] * len(size))).grid
    ours = shrink_grid(grid, factor)
    assert ours.size == itk.size
    np.testing.assert_allclose(ours.spacing, itk.spacing)
    np.testing.assert_allclose(ours.direction, itk.direction)
    np.testing.assert_allclose(ours.origin, itk.origin, atol=1e-9)


@pytest.mark.parametrize("size", [(81, 98, 82), (7, 9)])
def test_shrunk_grid_matches_itk_shrink_for_any_size(size):
    grid = oblique_grid(size)
    for factor in (2, 3, 4):
        itk = image_from_sitk(sitk.Shrink(sitk_image_on(grid), [factor] * len(size))).grid
        ours = shrink_grid(grid, factor)
        assert ours.size == itk.size
        np.testing.assert_allclose(ours.spacing, itk.spacing)
        np.testing.assert_allclose(ours.origin, itk.origin, atol=1e-6)


@pytest.mark.parametrize("size", [(30, 26, 21), (33, 40)])
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_pyramid_values_live_on_their_grid(size, factor):
    """A linear ramp shrunk without smoothing equals the ramp at the shrunk grid's points."""
    grid = oblique_grid(size)
    slope = np.array([0.3, -0.2, 0.5][: len(size)])
    level = pyramid_level(ramp_image(grid, slope), factor, 0.0)
    expected_grid = shrink_grid(grid, factor)
    assert level.grid.size == expected_grid.size
    np.testing.assert_array_equal(level.grid.origin, expected_grid.origin)
    np.testing.assert_allclose(level.array, ramp_image(level.grid, slope).array, atol=1e-9)


def test_pyramid_finest_level_is_the_image_itself():
    image = ramp_image(oblique_grid((9, 8, 7)), np.array([1.0, 2.0, 3.0]))
    level = pyramid_level(image, 1, 0.0)
    np.testing.assert_array_equal(level.array, image.array)
    assert level.grid is image.grid


def test_pyramid_smoothing_removes_noise_and_keeps_the_mean():
    rng = np.random.default_rng(4)
    grid = Grid((64, 64), np.ones(2), np.zeros(2), np.eye(2))
    noisy = Image(rng.normal(size=(64, 64)), grid)
    smoothed = pyramid_level(noisy, 1, 2.0).array
    assert smoothed.std() < 0.25 * noisy.array.std()
    assert abs(smoothed.mean() - noisy.array.mean()) < 0.02


def test_schedule_parses_ants_style_strings():
    levels = build_schedule("4x2x1", "2x1x0vox", "100x50x25")
    assert [(level.shrink, level.sigma, level.iterations) for level in levels] == [
        (4, 2.0, 100), (2, 1.0, 50), (1, 0.0, 25)]


@pytest.mark.parametrize("levels,smoothing,iterations", [
    ("4xax1", "2x1x0", "1x1x1"), ("4x2x1", "2x1", "1x1x1"), ("4x2", "2x1", "1x1x1"),
    ("0x1", "1x0", "1x1"), ("", "", ""), ("4x-2", "1x0", "1x1"), ("4x2x1x", "2x1x0x", "1x1x1x"),
])
def test_bad_schedules_are_config_errors(levels, smoothing, iterations):
    with pytest.raises(ConfigError):
        build_schedule(levels, smoothing, iterations)


# --- interpolation --------------------------------------------------------------------

@pytest.mark.parametrize("size", [(20, 18, 16), (30, 24)])
def test_gradient_is_in_physical_units(size):
    """∇ of a physical ramp is its slope, whatever the spacing and direction cosines."""
    grid = oblique_grid(size)
    slope = np.array([0.7, -0.4, 0.25][: len(size)])
    gradient = GradientImage.from_image(ramp_image(grid, slope))
    rng = np.random.default_rng(0)
    index = rng.uniform(1.0, np.asarray(size) - 2.0, size=(200, len(size)))
    points = index @ grid.index_to_physical_matrix().T + grid.origin
    _, sampled, inside = gradient.sample(points)
    assert inside.all()
    np.testing.assert_allclose(sampled, np.broadcast_to(slope, sampled.shape), atol=1e-9)


def test_sampling_an_image_between_voxels_is_linear_and_zero_outside():
    grid = oblique_grid((12, 10, 9))
    slope = np.array([0.3, 0.1, -0.2])
    image = ramp_image(grid, slope)
    rng = np.random.default_rng(0)
    index = rng.uniform(0.5, 7.5, size=(50, 3))
    points = index @ grid.index_to_physical_matrix().T + grid.origin
    values, _, inside = GradientImage.from_image(image).sample(points, with_gradient=False)
    np.testing.assert_allclose(values, points @ slope + 3.0, atol=1e-9)
    assert inside.all()
    outside = grid.origin - 50.0 * grid.direction[:, 0]
    value, _, inside = GradientImage.from_image(image).sample(outside[None, :], with_gradient=False)
    assert not inside[0] and value[0] == 0.0


def test_resample_matches_the_image_on_its_own_grid_and_uses_default_outside():
    grid = oblique_grid((11, 9))
    image = ramp_image(grid, np.array([1.0, -2.0]))
    np.testing.assert_allclose(resample(image, grid.physical_points()), image.array.ravel(), atol=1e-12)
    far = grid.physical_points()[:1] + 1000.0
    assert resample(image, far, default=-7.0)[0] == -7.0


# --- transforms -----------------------------------------------------------------------

def test_rotation_angle_round_trip_3d():
    rng = np.random.default_rng(1)
    for _ in range(50):
        angles = rng.uniform([-np.pi, -1.4, -np.pi], [np.pi, 1.4, np.pi])
        rotation = rotation_3d(angles)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        np.testing.assert_allclose(angles_from_rotation(rotation), angles, atol=1e-10)


def test_rotation_angle_round_trip_2d():
    for angle in np.linspace(-3.1, 3.1, 13):
        np.testing.assert_allclose(angles_from_rotation(rotation_2d(angle)), [angle], atol=1e-12)


def test_nearest_rotation_of_a_perturbed_rotation_is_that_rotation():
    rotation = rotation_3d(np.array([0.2, -0.3, 0.5]))
    perturbed = rotation + 1e-4 * np.random.default_rng(2).normal(size=(3, 3))
    nearest = nearest_rotation(perturbed)
    np.testing.assert_allclose(nearest @ nearest.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(nearest, rotation, atol=1e-3)
    assert np.linalg.det(nearest_rotation(-np.eye(3))) == pytest.approx(1.0)


def affine_features(model: AffineModel, params: np.ndarray) -> np.ndarray:
    """[M, t̃] flattened in the (k, j) order of affine_jacobian's rows."""
    matrix, translation = model.matrix_translation(params)
    return np.hstack([matrix, translation[:, None] / model.scale]).ravel()


@pytest.mark.parametrize("kind", ["affine", "rigid"])
@pytest.mark.parametrize("dim", [2, 3])
def test_affine_jacobian_matches_finite_differences(kind, dim):
    model = AffineModel(kind, dim, np.arange(1.0, dim + 1.0), 40.0)
    rng = np.random.default_rng(3)
    params = model.identity() + rng.normal(scale=0.2, size=model.n_params)
    step = 1e-6
    numeric = np.stack([
        (affine_features(model, params + step * e) - affine_features(model, params - step * e)) / (2 * step)
        for e in np.eye(model.n_params)], axis=1)
    np.testing.assert_allclose(model.affine_jacobian(params), numeric, atol=1e-8)


@pytest.mark.parametrize("kind", ["affine", "rigid"])
@pytest.mark.parametrize("dim", [2, 3])
def test_params_from_transform_recentres(kind, dim):
    """An ITK-style transform about another centre maps points the same way after conversion."""
    rng = np.random.default_rng(5)
    model = AffineModel(kind, dim, rng.normal(size=dim) * 10, 55.0)
    rotation = rotation_2d(0.3) if dim == 2 else rotation_3d(np.array([0.1, -0.2, 0.3]))
    matrix = rotation if kind == "rigid" else rotation @ np.diag(rng.uniform(0.9, 1.1, dim))
    translation, other_center = rng.normal(size=dim) * 5, rng.normal(size=dim) * 30
    params = model.params_from_transform(matrix, translation, other_center)
    points = rng.normal(size=(20, dim)) * 50
    expected = other_center + (points - other_center) @ matrix.T + translation
    np.testing.assert_allclose(model.apply(params, points), expected, atol=1e-9)


@pytest.mark.parametrize("kind", ["affine", "rigid"])
@pytest.mark.parametrize("dim", [2, 3])
def test_identity_params_map_points_to_themselves(kind, dim):
    model = AffineModel(kind, dim, np.ones(dim), 30.0)
    points = np.random.default_rng(6).normal(size=(10, dim)) * 40
    np.testing.assert_allclose(model.apply(model.identity(), points), points, atol=1e-12)
    coords = model.normalized_coordinates(points)
    np.testing.assert_allclose(coords[:, :dim] * 30.0 + 1.0, points)
    np.testing.assert_array_equal(coords[:, dim], 1.0)


# --- sampling -------------------------------------------------------------------------

def test_all_sampling_and_full_fraction_use_every_voxel():
    rng = np.random.default_rng(0)
    assert choose_samples("all", 1000, 0.1, rng) is None
    assert choose_samples("urs", 1000, 1.0, rng) is None


def test_urs_count_order_and_reproducibility():
    first = choose_samples("urs", 10_000, 0.1, np.random.default_rng(7))
    again = choose_samples("urs", 10_000, 0.1, np.random.default_rng(7))
    other = choose_samples("urs", 10_000, 0.1, np.random.default_rng(8))
    assert len(first) == 1000 and len(np.unique(first)) == 1000
    assert np.all(np.diff(first) > 0) and first.min() >= 0 and first.max() < 10_000
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_urs_keeps_at_least_sixteen_samples():
    assert len(choose_samples("urs", 1000, 0.001, np.random.default_rng(0))) == 16


def test_gms_prefers_high_gradient_and_is_reproducible():
    rng = np.random.default_rng(9)
    magnitude = np.where(np.arange(10_000) < 2000, 10.0, 0.1) * rng.uniform(0.5, 1.5, 10_000)
    chosen = choose_samples("gms", 10_000, 0.1, np.random.default_rng(1), magnitude)
    assert len(chosen) == 1000 and len(np.unique(chosen)) == 1000
    # The high-gradient fifth carries ~96 % of the weight.
    assert np.mean(chosen < 2000) > 0.8
    np.testing.assert_array_equal(chosen, choose_samples("gms", 10_000, 0.1, np.random.default_rng(1), magnitude))


def test_gms_with_few_edges_still_draws_the_full_sample():
    magnitude = np.zeros(5000)
    magnitude[:100] = 1.0
    chosen = choose_samples("gms", 5000, 0.1, np.random.default_rng(2), magnitude)
    assert len(chosen) == 500 and len(np.unique(chosen)) == 500
    assert np.isin(np.arange(100), chosen).mean() > 0.9


@pytest.mark.parametrize("mode", ["all", "urs", "gms"])
def test_samples_come_only_from_eligible_voxels(mode):
    eligible = np.zeros(10_000, dtype=bool)
    eligible[2500:7500] = True
    chosen = choose_samples(mode, 10_000, 0.1, np.random.default_rng(3), np.ones(10_000), eligible=eligible)
    assert np.all(eligible[chosen])
    assert len(chosen) == (5000 if mode == "all" else 500)


@pytest.mark.parametrize("mode", ["urs", "gms"])
def test_sample_is_stable_when_one_voxel_leaves_the_eligible_set(mode):
    eligible = np.ones(20_000, dtype=bool)
    eligible[:1000] = False
    fewer = eligible.copy()
    fewer[10_000] = False
    magnitude = np.linspace(0.0, 1.0, 20_000)
    first = choose_samples(mode, 20_000, 0.1, np.random.default_rng(0), magnitude, eligible=eligible)
    second = choose_samples(mode, 20_000, 0.1, np.random.default_rng(0), magnitude, eligible=fewer)
    assert len(np.intersect1d(first, second)) >= 0.95 * len(first)


@pytest.mark.parametrize("mode,fraction", [("everything", 0.1), ("urs", 0.0), ("gms", 1.5)])
def test_bad_sampling_settings_are_config_errors(mode, fraction):
    with pytest.raises(ConfigError):
        choose_samples(mode, 100, fraction, np.random.default_rng(0), np.ones(100))
