"""Every model's JSON report lists what each party learned, with counts that add up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ppreg.cli.app import app

DATA = Path(__file__).resolve().parents[1] / "data"
SMALL = ["--levels", "8x4", "--smoothing", "2x1", "--iterations", "3x2", "--quiet"]
COMMON_PARTY1 = {"values_total", "reveal_noise", "fixed_grid_geometry"}


def run(tmp_path: Path, *args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "p_")])
    assert result.exit_code == 0, result.stderr
    return json.loads((tmp_path / "p_report.json").read_text())


def check_common(report: dict, pet: str) -> tuple[dict, dict]:
    privacy = report["privacy"]
    assert privacy["threat_model"].startswith("semi-honest parties, non-colluding dealer")
    assert privacy["revealed_to_dealer"]["present"] == (pet == "mpc")
    to_party1, to_party2 = privacy["revealed_to_party1"], privacy["revealed_to_party2"]
    assert ("clear_engine" in to_party1 or "fixed_level_images" in to_party1 or "fixed_points" in to_party1) \
        == (pet == "clear")
    return to_party1, to_party2


@pytest.mark.parametrize("pet", ["clear", "mpc"])
@pytest.mark.parametrize("metric", ["ssd", "mi"])
def test_affine(tmp_path, pet, metric):
    report = run(tmp_path, "affine", str(DATA / "r64.png"), str(DATA / "r16.png"), "--pet", pet, "--metric", metric,
                 "--bins", "8", "--sampling", "urs", *SMALL)
    to_party1, to_party2 = check_common(report, pet)
    assert COMMON_PARTY1 <= set(to_party1)
    p, levels = 6, report["levels"]
    evaluations = sum(level["iterations"] for level in levels)
    per_evaluation, per_level = (p + 1, p * p + p + 1) if metric == "ssd" else (8 * 8 + 8 * 2 * 8 * 3, 0)
    assert to_party1["evaluations"] == evaluations and to_party1["levels"] == len(levels)
    assert to_party1["values_total"] == evaluations * per_evaluation + len(levels) * per_level
    assert to_party2["sample_indices"] and to_party2["sample_indices_total"] == sum(lv["samples"] for lv in levels)


@pytest.mark.parametrize("pet", ["clear", "mpc"])
def test_bspline(tmp_path, pet):
    report = run(tmp_path, "bspline", str(DATA / "r64.png"), str(DATA / "r16.png"), "--pet", pet, *SMALL)
    to_party1, to_party2 = check_common(report, pet)
    assert COMMON_PARTY1 <= set(to_party1)
    per_level = to_party1["values_per_evaluation"]
    iterations = [level["iterations"] for level in report["levels"]]
    assert to_party1["values_total"] == int(np.dot(per_level, iterations)) + len(iterations)
    assert per_level[1] > per_level[0]  # the control grid doubled


@pytest.mark.parametrize("pet", ["clear", "mpc"])
def test_pointcloud(tmp_path, pet):
    points = np.random.default_rng(0).normal(size=(12, 3)) * 30
    np.savetxt(tmp_path / "fixed.csv", points, delimiter=",")
    np.savetxt(tmp_path / "moving.csv", points + [1.0, 2.0, 3.0], delimiter=",")
    report = run(tmp_path, "pointcloud", str(tmp_path / "moving.csv"), str(tmp_path / "fixed.csv"), "--pet", pet,
                 "--quiet")
    to_party1, _ = check_common(report, pet)
    assert to_party1["values_total"] == 3 * 3 + 3 + 2


@pytest.mark.parametrize("pet", ["clear", "mpc"])
def test_ants(tmp_path, pet):
    report = run(tmp_path, "ants", str(DATA / "r64.png"), str(DATA / "r16.png"), "--pet", pet, *SMALL)
    to_party1, to_party2 = check_common(report, pet)
    assert to_party1["values_total"] > 0 and to_party2["values_total"] == to_party1["values_total"]
