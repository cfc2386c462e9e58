"""The ``ppreg`` command line: outputs, report, configs, apply/compare, and bad input.

Every bad input must end with exit code 2, exactly one stderr line starting with
``ppreg: error:`` and no file at all under the output prefix (not even a temp file).
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from conftest import CONFIG_DIR, DATA_DIR, known_case
from ppreg import __version__
from ppreg.api import transform_difference
from ppreg.cli.app import app
from ppreg.config import AffineConfig, load_config
from ppreg.io.images import Grid, Image, read_image, write_image
from ppreg.io.transforms import linear_to_sitk, read_transform, write_transform
from ppreg.synthetic import known_affine

QUICK_2D = ["--levels", "4x2x1", "--smoothing", "2x1x0", "--iterations", "30x20x10"]
QUICK_3D = ["--levels", "4x2", "--smoothing", "2x1", "--iterations", "20x10"]
TINY = ["--levels", "4", "--smoothing", "2", "--iterations", "2"]


def invoke(*args) -> "Result":
    return CliRunner().invoke(app, [str(arg) for arg in args])


def output_files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Files the CLI tests read: known-case moving images and truths, masks, broken files."""
    folder = tmp_path_factory.mktemp("inputs")
    r16, mni = known_case("r16"), known_case("mni")
    paths = {
        "moving_png": write_image(r16.moving, folder / "moving.png"),
        "truth_2d": write_transform(r16.truth_transform(), folder / "truth_2d.tfm"),
        "moving_nii": write_image(mni.moving, folder / "moving.nii.gz"),
        "truth_3d": write_transform(mni.truth_transform(), folder / "truth_3d.tfm"),
        "garbage_png": folder / "garbage.png",
        "nan_mha": folder / "nan.mha",
        "nan_nii": folder / "nan.nii.gz",
        "truncated_nii": folder / "truncated.nii.gz",
        "small_mask": write_image(Image(np.ones((128, 128)), Grid((128, 128), np.ones(2), np.zeros(2), np.eye(2))),
                                  folder / "small_mask.png"),
        "unknown_key": folder / "unknown_key.yaml",
        "malformed": folder / "malformed.yaml",
    }
    paths["garbage_png"].write_bytes(b"\x89PNG but not really" * 20)
    nan_slice = np.ones((256, 256))
    nan_slice[100, 100] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(nan_slice), str(paths["nan_mha"]))
    sitk.WriteImage(sitk.GetImageFromArray(nan_slice), str(paths["nan_nii"]))
    mni_raw = (DATA_DIR / "mni_t1_2mm.nii.gz").read_bytes()
    paths["truncated_nii"].write_bytes(mni_raw[: len(mni_raw) // 2])
    paths["unknown_key"].write_text("levels: 4x2\nshrink_factors: 4x2\n")
    paths["malformed"].write_text("levels: [4, 2\nmetric: ssd\n")
    return paths


# --- end to end -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def png_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("png_run")
    result = invoke("affine", inputs["moving_png"], DATA_DIR / "r16.png", "-o", out / "run_", *QUICK_2D,
                    "--seed", 5, "--reference-transform", inputs["truth_2d"], "--mask", DATA_DIR / "r16_mask.png")
    return result, out


@pytest.fixture(scope="module")
def nifti_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("nifti_run")
    result = invoke("affine", inputs["moving_nii"], DATA_DIR / "mni_t1_2mm.nii.gz", "-o", out / "run_", *QUICK_3D,
                    "--pet", "mpc", "--sampling", "urs", "--sampling-fraction", 0.1, "--quiet")
    return result, out


def test_png_run_writes_png_transform_and_report(png_run):
    result, out = png_run
    assert result.exit_code == 0, result.stderr
    assert output_files(out) == ["run_report.json", "run_transform.tfm", "run_warped.png"]
    assert json.loads(result.stdout)["warped"].endswith("run_warped.png")
    warped = read_image(out / "run_warped.png")
    assert warped.grid.size == (256, 256)
    fixed = read_image(DATA_DIR / "r16.png").array
    mask = read_image(DATA_DIR / "r16_mask.png").array > 0
    assert np.corrcoef(warped.array[mask], fixed[mask])[0, 1] > 0.98


def test_transform_file_is_read_by_simpleitk(png_run, inputs):
    _, out = png_run
    transform = sitk.ReadTransform(str(out / "run_transform.tfm"))
    grid = read_image(DATA_DIR / "r16.png").grid
    error = transform_difference(transform, read_transform(inputs["truth_2d"]), grid)
    assert error["rmse_mm"] < 0.5


def test_report_has_the_schema_1_fields(png_run):
    _, out = png_run
    report = json.loads((out / "run_report.json").read_text())
    assert report["schema"] == 1
    assert isinstance(report["command"], list) and report["versions"]["ppreg"] == __version__
    assert report["config"]["seed"] == 5 and report["config"]["levels"] == "4x2x1"
    assert report["inputs"]["moving"]["size"] == [256, 256] and report["inputs"]["fixed"]["spacing_mm"] == [1.0, 1.0]
    assert [level["shrink"] for level in report["levels"]] == [4, 2, 1]
    assert report["iterations_total"] == sum(level["iterations"] for level in report["levels"]) > 0
    assert report["similarity"]["final"] < report["similarity"]["initial"]
    assert len(report["transform"]["matrix"]) == 2 and len(report["transform"]["translation_mm"]) == 2
    assert report["time"]["per_iteration_mean_seconds"] > 0
    for part in ("per_iteration_mean", "setup", "total"):
        assert set(report["communication"][part]) >= {"party1", "party2", "dealer", "rounds"}
    assert report["privacy"]["revealed_to_party1"] and report["privacy"]["revealed_to_party2"]
    accuracy = report["accuracy"]
    assert accuracy["rmse_mm"] < 0.5 and accuracy["max_mm"] < 1.5
    assert accuracy["voxels"] == int((read_image(DATA_DIR / "r16_mask.png").array > 0).sum())


def test_nifti_mpc_run_writes_nifti_on_the_fixed_grid_and_counts_every_party(nifti_run):
    result, out = nifti_run
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # --quiet
    assert output_files(out) == ["run_report.json", "run_transform.tfm", "run_warped.nii.gz"]
    warped, fixed = read_image(out / "run_warped.nii.gz"), read_image(DATA_DIR / "mni_t1_2mm.nii.gz")
    assert warped.grid.size == fixed.grid.size
    np.testing.assert_allclose(warped.grid.origin, fixed.grid.origin, atol=1e-4)
    np.testing.assert_allclose(warped.grid.direction, fixed.grid.direction, atol=1e-6)
    report = json.loads((out / "run_report.json").read_text())
    assert report["config"]["pet"] == "mpc" and report["accuracy"] is None
    per_iteration = report["communication"]["per_iteration_mean"]
    assert per_iteration["party1"] > 0 and per_iteration["party2"] > 0 and per_iteration["dealer"] > 0
    assert report["communication"]["setup"]["party2"] > 0


def test_yaml_config_is_used_and_command_line_wins(tmp_path, inputs):
    config = tmp_path / "quick.yaml"
    config.write_text("levels: 4x2\nsmoothing: 2x1\niterations: 6x4\nsampling: urs\nsampling_fraction: 0.2\nseed: 11\n")
    result = invoke("affine", inputs["moving_png"], DATA_DIR / "r16.png", "-o", tmp_path / "out" / "c_",
                    "--config", config, "--iterations", "5x3", "--seed", 12, "-q")
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "out" / "c_report.json").read_text())
    settings = report["config"]
    assert (settings["levels"], settings["sampling"], settings["sampling_fraction"]) == ("4x2", "urs", 0.2)
    assert (settings["iterations"], settings["seed"]) == ("5x3", 12)
    assert [level["iterations"] <= budget for level, budget in zip(report["levels"], (5, 3))] == [True, True]
    for level, voxels in zip(report["levels"], (64 * 64, 128 * 128)):
        assert 0.1 * voxels <= level["samples"] <= round(0.2 * voxels)


def test_same_seed_gives_the_same_transform_file(tmp_path, inputs):
    texts = []
    for run in ("a", "b"):
        result = invoke("affine", inputs["moving_png"], DATA_DIR / "r16.png", "-o", tmp_path / f"{run}_", *QUICK_2D,
                        "--sampling", "gms", "--seed", 3, "-q")
        assert result.exit_code == 0, result.stderr
        texts.append((tmp_path / f"{run}_transform.tfm").read_text())
    assert texts[0] == texts[1]


def test_initial_transform_starts_the_registration_there(tmp_path, inputs):
    args = ["affine", inputs["moving_png"], DATA_DIR / "r16.png", *TINY, "-q"]
    assert invoke(*args, "-o", tmp_path / "plain_").exit_code == 0
    assert invoke(*args, "-o", tmp_path / "init_", "--initial-transform", inputs["truth_2d"]).exit_code == 0
    plain = json.loads((tmp_path / "plain_report.json").read_text())["similarity"]["initial"]
    started = json.loads((tmp_path / "init_report.json").read_text())["similarity"]["initial"]
    assert started < 0.2 * plain


def test_configs_affine_yaml_equals_the_built_in_defaults():
    assert load_config(AffineConfig, CONFIG_DIR / "affine.yaml", {}) == AffineConfig()


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda path: path.name)
def test_every_bundled_config_loads(path):
    import ppreg.config as config_module

    classes = [value for name, value in vars(config_module).items() if name.endswith("Config") and isinstance(value, type)]
    loaded = []
    for cls in classes:
        try:
            loaded.append(load_config(cls, path, {}))
        except Exception:  # noqa: BLE001 - a config belongs to one model; others refuse its keys
            continue
    assert loaded, f"{path.name} is accepted by none of {[cls.__name__ for cls in classes]}"


def test_paper_configs_differ_from_the_defaults_only_where_documented():
    defaults = AffineConfig()
    ssd = load_config(AffineConfig, CONFIG_DIR / "affine_ssd_paper.yaml", {})
    mi = load_config(AffineConfig, CONFIG_DIR / "affine_mi_paper.yaml", {})
    assert (ssd.levels, ssd.sampling, ssd.metric) == ("20x10x5x1", "urs", "ssd")
    assert (mi.levels, mi.smoothing, mi.metric, mi.sampling_fraction) == ("10x5", "3x1", "mi", 0.1)
    assert {f.name for f in fields(AffineConfig) if getattr(ssd, f.name) != getattr(defaults, f.name)} <= {
        "metric", "levels", "smoothing", "iterations", "sampling", "sampling_fraction", "bins"}


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"ppreg {__version__}"


# --- apply and compare ----------------------------------------------------------------

@pytest.mark.parametrize("moving,reference,output", [
    ("mni_t1_2mm.nii.gz", "mni_t1_2mm.nii.gz", "warped.nii.gz"),
    ("r64.png", "r16.png", "warped.mha"),
])
def test_apply_matches_simpleitk_resample_of_our_tfm(tmp_path, moving, reference, output):
    """Our .tfm through SimpleITK's own resampler (linear, default 0) = ``ppreg apply``."""
    reference_image = read_image(DATA_DIR / reference)
    dim = reference_image.dim
    center = reference_image.grid.center() + np.array([7.0, -5.0, 3.0][:dim])
    truth = known_affine(dim, 8.0, [4.0, -3.0, 2.0][:dim], 0.05, center)
    tfm = write_transform(linear_to_sitk(*truth, rigid=False), tmp_path / "t.tfm")
    result = invoke("apply", tfm, DATA_DIR / moving, "--reference", DATA_DIR / reference, "-o", tmp_path / output)
    assert result.exit_code == 0, result.stderr
    moving_sitk = sitk.Cast(sitk.ReadImage(str(DATA_DIR / moving)), sitk.sitkFloat64)
    expected = sitk.Resample(moving_sitk, sitk.ReadImage(str(DATA_DIR / reference)), sitk.ReadTransform(str(tfm)),
                             sitk.sitkLinear, 0.0)
    ours = read_image(tmp_path / output).array
    value_range = float(np.ptp(sitk.GetArrayFromImage(moving_sitk)))
    assert np.max(np.abs(ours - sitk.GetArrayFromImage(expected))) <= 1e-3 * value_range
    assert np.count_nonzero(ours) > 0.3 * ours.size


def test_apply_nearest_keeps_label_values(tmp_path):
    tfm = write_transform(linear_to_sitk(*known_affine(2, 10.0, [3.0, 2.0], 0.0, np.array([128.0, 128.0])), rigid=True),
                          tmp_path / "t.tfm")
    result = invoke("apply", tfm, DATA_DIR / "r16_mask.png", "--reference", DATA_DIR / "r16.png",
                    "-o", tmp_path / "mask.nii.gz", "--interpolation", "nearest")
    assert result.exit_code == 0, result.stderr
    assert set(np.unique(read_image(tmp_path / "mask.nii.gz").array)) <= {0.0, 255.0}


def compare(a, b, *extra) -> dict:
    result = invoke("compare", a, b, *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_compare_of_a_transform_with_itself_is_zero(tmp_path, inputs):
    same = compare(inputs["truth_3d"], inputs["truth_3d"], "--reference", DATA_DIR / "mni_t1_2mm.nii.gz",
                   "--mask", DATA_DIR / "mni_mask_2mm.nii.gz")
    assert same["rmse_mm"] == 0.0 and same["max_mm"] == 0.0
    assert same["voxels"] == int((read_image(DATA_DIR / "mni_mask_2mm.nii.gz").array > 0).sum())


def test_compare_with_a_translated_copy_is_the_translation_length(tmp_path, inputs):
    matrix, translation, center = known_case("mni").truth
    shift = np.array([1.5, -2.0, 0.5])
    shifted = write_transform(linear_to_sitk(matrix, translation + shift, center, rigid=False), tmp_path / "s.tfm")
    difference = compare(inputs["truth_3d"], shifted, "--reference", DATA_DIR / "mni_t1_2mm.nii.gz")
    assert difference["rmse_mm"] == pytest.approx(np.linalg.norm(shift), abs=1e-6)
    assert difference["max_mm"] == pytest.approx(np.linalg.norm(shift), abs=1e-6)


# --- bad input ------------------------------------------------------------------------


BAD_AFFINE_INPUTS = {
    "missing_moving": lambda p: [p["moving_png"].parent / "absent.png", DATA_DIR / "r16.png"],
    "missing_fixed": lambda p: [p["moving_png"], p["moving_png"].parent / "absent.png"],
    "corrupt_moving": lambda p: [p["garbage_png"], DATA_DIR / "r16.png"],
    "corrupt_fixed": lambda p: [p["moving_png"], p["garbage_png"]],
    "2d_vs_3d": lambda p: [p["moving_png"], DATA_DIR / "mni_t1_2mm.nii.gz"],
    "nan_image": lambda p: [p["nan_mha"], DATA_DIR / "r16.png"],
    "unknown_yaml_key": lambda p: [p["moving_png"], DATA_DIR / "r16.png", "--config", p["unknown_key"]],
    "malformed_yaml": lambda p: [p["moving_png"], DATA_DIR / "r16.png", "--config", p["malformed"]],
    "missing_config": lambda p: [p["moving_png"], DATA_DIR / "r16.png", "--config", p["malformed"].parent / "x.yaml"],
    "bad_levels": lambda p: [p["moving_png"], DATA_DIR / "r16.png", "--levels", "4xax1"],
    "level_count_mismatch": lambda p: [p["moving_png"], DATA_DIR / "r16.png", "--levels", "4x2x1", "--smoothing", "2x1"],
    "fraction_zero": lambda p: [p["moving_png"], DATA_DIR / "r16.png", "--sampling-fraction", "0"],
    "fraction_above_one": lambda p: [p["moving_png"], DATA_DIR / "r16.png", "--sampling-fraction", "1.5"],
    "too_few_bins": lambda p: [p["moving_png"], DATA_DIR / "r16.png", "--metric", "mi", "--bins", "4"],
    "missing_initial_transform": lambda p: [p["moving_png"], DATA_DIR / "r16.png", "--initial-transform",
                                            p["moving_png"].parent / "absent.tfm"],
    "initial_transform_3d_for_2d": lambda p: [p["moving_png"], DATA_DIR / "r16.png", "--initial-transform",
                                              p["truth_3d"]],
    "missing_reference_transform": lambda p: [p["moving_png"], DATA_DIR / "r16.png", *TINY,
                                              "--reference-transform", p["moving_png"].parent / "absent.tfm"],
    "mask_of_wrong_shape": lambda p: [p["moving_png"], DATA_DIR / "r16.png", *TINY,
                                      "--reference-transform", p["truth_2d"], "--mask", p["small_mask"]],
    "nan_nifti": lambda p: [p["nan_nii"], DATA_DIR / "r16.png", *TINY],
    "truncated_nifti": lambda p: [p["moving_nii"], p["truncated_nii"], *TINY],
}
BAD_CASES = [pytest.param(build, id=name) for name, build in BAD_AFFINE_INPUTS.items()]


def assert_clean_failure(result, out: Path, message: str = "") -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppreg: error:"), result.stderr
    assert message in lines[0]
    assert output_files(out) == []


@pytest.mark.parametrize("build_args", BAD_CASES)
def test_bad_input_exits_2_with_one_line_and_no_outputs(tmp_path, inputs, build_args):
    out = tmp_path / "out"
    result = invoke("affine", *build_args(inputs), "-o", out / "run_")
    assert_clean_failure(result, out)


def test_engine_that_cannot_compute_the_metric_is_refused(tmp_path, inputs):
    """fhe engines compute SSD terms only: MI is refused before anything connects."""
    out = tmp_path / "out"
    result = invoke("affine", inputs["moving_png"], DATA_DIR / "r16.png", "--pet", "fhe1", "--metric", "mi",
                    "-o", out / "run_")
    assert_clean_failure(result, out, "mi")


def test_unknown_engine_is_a_usage_error(tmp_path, inputs):
    out = tmp_path / "out"
    result = invoke("affine", inputs["moving_png"], DATA_DIR / "r16.png", "--pet", "paillier", "-o", out / "run_")
    assert result.exit_code == 2
    assert "--pet" in result.stderr
    assert output_files(out) == []


@pytest.mark.parametrize("command", [
    lambda p, out: ["apply", p["truth_2d"], DATA_DIR / "r16.png", "--reference", DATA_DIR / "r16.png", "-o",
                    out / "w.nii.gz", "--interpolation", "cubic"],
    lambda p, out: ["apply", p["truth_3d"], DATA_DIR / "r16.png", "--reference", DATA_DIR / "r16.png", "-o",
                    out / "w.nii.gz"],
    lambda p, out: ["apply", p["garbage_png"], DATA_DIR / "r16.png", "--reference", DATA_DIR / "r16.png", "-o",
                    out / "w.nii.gz"],
    lambda p, out: ["compare", p["truth_2d"], p["truth_2d"], "--reference", DATA_DIR / "mni_t1_2mm.nii.gz"],
    lambda p, out: ["compare", p["truth_2d"], p["truth_2d"], "--reference", DATA_DIR / "r16.png", "--mask",
                    p["small_mask"]],
], ids=["apply_bad_interpolation", "apply_3d_transform_on_2d", "apply_corrupt_transform", "compare_2d_on_3d",
        "compare_mask_shape"])
def test_apply_and_compare_refuse_bad_input(tmp_path, inputs, command):
    out = tmp_path / "out"
    assert_clean_failure(invoke(*command(inputs, out)), out)
