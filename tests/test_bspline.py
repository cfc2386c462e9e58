"""B-spline registration: ITK-exact grid, known-deformation recovery, engines vs clear, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from ppreg.api import apply_transform, run_affine, run_bspline, transform_difference
from ppreg.cli.app import app
from ppreg.config import AffineConfig, BSplineConfig, load_config
from ppreg.core.bspline import ControlGrid
from ppreg.io.images import read_image, write_image
from ppreg.io.transforms import write_transform
from ppreg.secure.runtime import in_process_session
from ppreg.synthetic import smooth_deformation, warp_with_deformation

DATA = Path(__file__).resolve().parents[1] / "data"
CONFIG = BSplineConfig(levels="4x2x1", smoothing="2x1x0", iterations="30x20x15").validate()


@pytest.fixture(scope="module")
def slice_case():
    """r16 deformed by a seeded smooth field with max 4 px (the issue's case)."""
    fixed = read_image(DATA / "r16.png")
    control, coefficients = smooth_deformation(fixed.grid, 4.0, np.random.default_rng(3), mesh=4)
    moving = warp_with_deformation(fixed, control, coefficients)
    mask = read_image(DATA / "r16_mask.png").array > 0
    return fixed, moving, control.to_sitk(coefficients), mask


def register(moving, fixed, pet, config=CONFIG):
    with in_process_session(fixed, pet) as proxy:
        return run_bspline(moving, proxy, config)


@pytest.fixture(scope="module")
def clear_outcome(slice_case):
    fixed, moving, _, _ = slice_case
    return register(moving, fixed, "clear")


@pytest.mark.parametrize("dim", [2, 3])
def test_control_grid_matches_itk(dim):
    image = read_image(DATA / ("r16.png" if dim == 2 else "mni_t1_2mm.nii.gz"))
    control = ControlGrid.covering(image.grid, [5, 4, 3][:dim])
    coefficients = np.random.default_rng(dim).normal(size=(control.n_points, dim)) * 3
    transform = control.to_sitk(coefficients)
    points = image.grid.physical_points()[::101]
    ours = points + control.displacement(coefficients, points)
    itk = np.array([transform.TransformPoint(tuple(p)) for p in points])
    assert np.max(np.abs(ours - itk)) < 1e-9


def test_refinement_keeps_the_deformation():
    grid = read_image(DATA / "r16.png").grid
    coarse = ControlGrid.covering(grid, [3, 3])
    coefficients = np.random.default_rng(0).normal(size=(coarse.n_points, 2)) * 2
    finer = coarse.refined(grid)
    points = grid.physical_points()
    fitted = finer.fit(points, coarse.displacement(coefficients, points))
    assert finer.mesh_size == (6, 6)
    assert np.max(np.abs(finer.displacement(fitted, points) - coarse.displacement(coefficients, points))) < 1e-3


def test_clear_recovers_a_known_smooth_deformation(slice_case, clear_outcome):
    fixed, _, truth, mask = slice_case
    error = transform_difference(clear_outcome.sitk_transform(), truth, fixed.grid, mask)
    assert error["rmse_mm"] <= 0.5, error
    assert clear_outcome.result.metric_final < clear_outcome.result.metric_initial


ENGINES = [pytest.param("mpc", 0.05, id="mpc"), pytest.param("fhe2", 0.5, id="fhe2")]


@pytest.mark.parametrize("pet, tolerance", ENGINES)
def test_secure_engine_matches_clear(slice_case, clear_outcome, pet, tolerance):
    fixed, moving, _, mask = slice_case
    secure = register(moving, fixed, pet)
    difference = transform_difference(secure.sitk_transform(), clear_outcome.sitk_transform(), fixed.grid, mask)
    assert difference["rmse_mm"] <= tolerance, difference
    iterations = [r for level in secure.result.levels for r in level.iterations]
    assert all(r.traffic.party1 > 0 and r.traffic.party2 > 0 for r in iterations)


def test_sitk_resampling_of_our_tfm_equals_ppreg_apply(tmp_path, slice_case, clear_outcome):
    fixed, moving, _, _ = slice_case
    path = tmp_path / "t.tfm"
    write_transform(clear_outcome.sitk_transform(), path)
    transform = sitk.ReadTransform(str(path))
    ours = apply_transform(transform, moving, fixed.grid).array
    reference = sitk.GetImageFromArray(fixed.array)
    itk = sitk.GetArrayFromImage(sitk.Resample(sitk.GetImageFromArray(moving.array), reference, transform,
                                               sitk.sitkLinear, 0.0, sitk.sitkFloat64))
    assert np.max(np.abs(ours - itk)) <= 1e-3 * np.ptp(moving.array)


def white_matter(values: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Thresholded WM: the brightest tissue class (above the brain's 70th percentile)."""
    return (values > np.percentile(values[brain], 70)) & brain


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def test_inter_subject_pair_improves_on_affine(tmp_path):
    """r64 → r16: the B-spline on top of the affine lowers SSD and raises WM Dice."""
    fixed, moving = read_image(DATA / "r16.png"), read_image(DATA / "r64.png")
    brain = read_image(DATA / "r16_mask.png").array > 0
    with in_process_session(fixed, "clear") as proxy:
        affine = run_affine(moving, proxy, AffineConfig().validate())
    write_transform(affine.sitk_transform(), tmp_path / "affine.tfm")
    with in_process_session(fixed, "clear") as proxy:
        deformable = run_bspline(moving, proxy, CONFIG, initial_transform=str(tmp_path / "affine.tfm"))
    fixed_wm = white_matter(fixed.array, brain)
    scores, ssd = {}, {}
    for name, outcome in {"affine": affine, "bspline": deformable}.items():
        warped = apply_transform(outcome.sitk_transform(), moving, fixed.grid).array
        scores[name] = dice(fixed_wm, white_matter(warped, brain))
        ssd[name] = float(np.mean((warped[brain] - fixed.array[brain]) ** 2))
    assert ssd["bspline"] < ssd["affine"]
    assert scores["bspline"] > scores["affine"], scores
    assert isinstance(deformable.sitk_transform(), sitk.CompositeTransform)


def test_cli_bspline_writes_outputs(tmp_path, slice_case):
    fixed, moving, truth, _ = slice_case
    write_image(moving, tmp_path / "moving.png")
    write_transform(truth, tmp_path / "truth.tfm")
    result = CliRunner().invoke(app, [
        "bspline", str(tmp_path / "moving.png"), str(DATA / "r16.png"), "-o", str(tmp_path / "b_"),
        "--levels", "4x2", "--smoothing", "2x1", "--iterations", "10x5", "--grid-spacing", "10",
        "--reference-transform", str(tmp_path / "truth.tfm"), "--mask", str(DATA / "r16_mask.png"), "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "b_report.json").read_text())
    assert report["model"] == "bspline" and report["schema"] == 1
    assert report["transform"]["kind"] == "bspline" and report["accuracy"]["rmse_mm"] < 4.0
    assert (tmp_path / "b_warped.png").is_file()
    assert isinstance(sitk.ReadTransform(str(tmp_path / "b_transform.tfm")), sitk.Transform)


@pytest.mark.parametrize("args, message", [
    (["--grid-spacing", "-1"], "grid_spacing"),
    (["--regularization", "-0.1"], "regularization"),
    (["--levels", "4x2", "--smoothing", "1"], "same number of levels"),
])
def test_cli_bspline_bad_options(tmp_path, args, message):
    result = CliRunner().invoke(app, ["bspline", str(DATA / "r64.png"), str(DATA / "r16.png"),
                                      "-o", str(tmp_path / "x_"), "--quiet", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not list(tmp_path.iterdir())


def test_config_file_matches_defaults():
    assert load_config(BSplineConfig, Path(__file__).resolve().parents[1] / "configs" / "bspline.yaml", {}) \
        == BSplineConfig().validate()
