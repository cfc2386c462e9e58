"""`ppreg report`: a table over real reports; unusable files exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ppreg.cli.app import app
from ppreg.io.report_summary import human_bytes, summary_fields

DATA = Path(__file__).resolve().parents[1] / "data"
FAST = ["--levels", "4x2", "--smoothing", "2x1", "--iterations", "5x3"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> list[Path]:
    """Two real reports: clear affine with URS sampling and mpc rigid."""
    folder = tmp_path_factory.mktemp("reports")
    runs = {"clear_": ["--pet", "clear", "--sampling", "urs", "--sampling-fraction", "0.25"],
            "mpc_": ["--pet", "mpc", "--transform", "rigid"]}
    for prefix, options in runs.items():
        result = CliRunner().invoke(app, ["affine", str(DATA / "r64.png"), str(DATA / "r16.png"),
                                          "-o", str(folder / prefix), "--quiet", *FAST, *options])
        assert result.exit_code == 0, result.output
    return [folder / f"{prefix}report.json" for prefix in runs]


def test_one_row_per_report_with_the_compared_numbers(reports):
    result = CliRunner().invoke(app, ["report", *map(str, reports)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    clear_row = next(line for line in lines if "clear_report.json" in line)
    mpc_row = next(line for line in lines if "mpc_report.json" in line)
    assert "affine" in clear_row and "ssd" in clear_row and "urs 25%" in clear_row
    assert "affine (rigid)" in mpc_row and " mpc " in mpc_row and "kB" in mpc_row
    for header in ("iterations", "initial cost", "final cost", "RMSE mm", "s/iteration", "party1/iteration",
                   "party2/iteration", "dealer/iteration"):
        assert header in result.stdout


def test_fields_follow_the_report(reports):
    report = json.loads(reports[1].read_text())
    fields = summary_fields(report)
    assert fields["iterations"] == str(report["iterations_total"])
    assert fields["party1/iteration"] == human_bytes(report["communication"]["per_iteration_mean"]["party1"])
    assert fields["RMSE mm"] == "-"  # no --reference-transform


def test_missing_keys_show_a_dash():
    fields = summary_fields({"schema": 1, "model": "pointcloud"})
    assert fields["model"] == "pointcloud"
    assert set(fields.values()) == {"pointcloud", "-"}


def test_human_bytes():
    assert [human_bytes(v) for v in (512, 2048, 2_650_000, 3.2e9, None)] == ["512 B", "2.05 kB", "2.65 MB",
                                                                           "3.2 GB", "-"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is not a ppreg report"),
    ('{"hello": 1}', "is not a ppreg report"),
])
def test_unusable_reports_exit_2(tmp_path, reports, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = CliRunner().invoke(app, ["report", str(reports[0]), str(bad)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_missing_report_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "none.json")])
    assert result.exit_code == 2
    assert "report not found" in result.stderr
