"""`ppreg batch`: manifests, one broken pair among good ones, resuming, the summary."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ppreg.batch import read_manifest
from ppreg.cli.app import app
from ppreg.errors import InputError
from ppreg.io.images import read_image, write_image
from ppreg.io.transforms import linear_to_sitk, write_transform
from ppreg.synthetic import known_affine, warp_with

DATA = Path(__file__).resolve().parents[1] / "data"
FAST = ["--levels", "4x2x1", "--smoothing", "2x1x0", "--iterations", "10x5x3"]


def summary(outdir: Path) -> dict[str, dict]:
    with open(outdir / "summary.csv", newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


@pytest.fixture()
def manifest(tmp_path) -> Path:
    """Three pairs: a moved r16 with its true transform, another slice, and a missing file."""
    fixed = read_image(DATA / "r16.png")
    truth = known_affine(2, 5.0, (3.0, -2.0), 0.02, fixed.grid.center())
    write_image(warp_with(fixed, *truth), tmp_path / "moved.png")
    write_transform(linear_to_sitk(*truth, rigid=False), tmp_path / "truth.tfm")
    path = tmp_path / "pairs.csv"
    path.write_text("id,moving,fixed,reference\n"
                    f"moved,moved.png,{DATA / 'r16.png'},truth.tfm\n"
                    f"broken,missing.png,{DATA / 'r16.png'},\n"
                    f"other,{DATA / 'r64.png'},{DATA / 'r16.png'},\n")
    return path


def test_one_broken_pair_does_not_stop_the_others_and_a_rerun_skips_the_done_ones(tmp_path, manifest):
    outdir = tmp_path / "out"
    command = ["batch", str(manifest), "--model", "affine", "--pet", "mpc", "-o", str(outdir), "--jobs", "2", *FAST]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 4, first.output
    assert "1 of 3 pairs failed" in first.stderr
    rows = summary(outdir)
    assert list(rows) == ["moved", "broken", "other"]  # manifest order
    assert rows["broken"]["status"] == "failed"
    assert rows["broken"]["exit_code"] == "2"
    assert rows["broken"]["error"].startswith("image not found:") and "missing.png" in rows["broken"]["error"]
    assert not (outdir / "broken_report.json").exists()
    for pair in ("moved", "other"):
        assert rows[pair]["status"] == "ok", rows[pair]
        assert float(rows[pair]["metric_final"]) < float(rows[pair]["metric_initial"])
        assert float(rows[pair]["bytes_per_iteration_party1"]) > 0
        assert float(rows[pair]["bytes_per_iteration_dealer"]) > 0
        assert (outdir / f"{pair}_report.json").is_file()
    assert float(rows["moved"]["rmse_mm"]) < 0.5
    assert rows["other"]["rmse_mm"] == ""

    again = CliRunner().invoke(app, command)
    assert again.exit_code == 4
    rows = summary(outdir)
    assert [rows[pair]["status"] for pair in ("moved", "broken", "other")] == ["skipped", "failed", "skipped"]
    assert rows["moved"]["metric_final"] != ""  # a skipped pair keeps its numbers


def test_all_pairs_ok_exits_zero(tmp_path):
    manifest = tmp_path / "one.csv"
    manifest.write_text(f"moving,fixed\n{DATA / 'r64.png'},{DATA / 'r16.png'}\n")
    result = CliRunner().invoke(app, ["batch", str(manifest), "--model", "affine", "-o", str(tmp_path / "o"),
                                      "--qc", *FAST])
    assert result.exit_code == 0, result.output
    assert summary(tmp_path / "o")["r64"]["status"] == "ok"  # id from the moving file's name
    assert (tmp_path / "o" / "r64_qc.png").is_file()


def test_a_batch_of_ants_registrations_writes_warps_and_a_summary(tmp_path):
    manifest = tmp_path / "syn.csv"
    manifest.write_text(f"moving,fixed\n{DATA / 'r64.png'},{DATA / 'r16.png'}\n")
    result = CliRunner().invoke(app, ["batch", str(manifest), "--model", "ants", "-o", str(tmp_path / "o"),
                                      "--levels", "4x2", "--smoothing", "1x0", "--iterations", "5x3"])
    assert result.exit_code == 0, result.output
    row = summary(tmp_path / "o")["r64"]
    assert row["status"] == "ok" and row["metric_final"] != ""
    assert (tmp_path / "o" / "r64_warp.nii.gz").is_file() and (tmp_path / "o" / "r64_inverse_warp.nii.gz").is_file()


@pytest.mark.parametrize("text, message", [
    ("moving,id\na.png,x\n", "missing: fixed"),
    ("moving,fixed,subject\na.png,b.png,s1\n", "unknown column 'subject'"),
    ("moving,fixed\n", "no pairs"),
    ("moving,fixed\na.png,\n", "empty fixed cell"),
    ("id,moving,fixed\nx,a.png,b.png\nx,c.png,d.png\n", "id 'x' appears twice"),
    ("moving,fixed\nsub/a.png,b.png\nother/a.png,b.png\n", "add an id column"),
    ("id,moving,fixed\nx y,a.png,b.png\n", "must be letters"),
])
def test_bad_manifests_are_refused(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_manifest(path)


def test_relative_paths_are_relative_to_the_manifest(tmp_path):
    path = tmp_path / "sub" / "m.csv"
    path.parent.mkdir()
    path.write_text("moving,fixed\nimages/a.nii.gz,/abs/b.nii.gz\n")
    (pair,) = read_manifest(path)
    assert (pair.id, pair.moving, pair.fixed) == ("a", path.parent / "images" / "a.nii.gz", Path("/abs/b.nii.gz"))


@pytest.mark.parametrize("extra, message", [
    (["--metrc", "mi"], "No such option"),
    (["--pet", "paillier"], "paillier"),
    (["--peer", "host:1"], "batch sets --peer itself"),
    (["--reference-transform=t.tfm"], "batch sets --reference-transform itself"),
])
def test_bad_options_stop_the_batch_before_any_pair_runs(tmp_path, extra, message):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"moving,fixed\n{DATA / 'r64.png'},{DATA / 'r16.png'}\n")
    result = CliRunner().invoke(app, ["batch", str(manifest), "--model", "affine", "-o", str(tmp_path / "o"), *extra])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "o").exists()


def test_missing_manifest_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["batch", str(tmp_path / "none.csv"), "--model", "affine", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "manifest not found" in result.stderr


def test_a_manifest_column_the_model_cannot_use_is_refused(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("moving,fixed,reference\na.csv,b.csv,t.tfm\n")
    result = CliRunner().invoke(app, ["batch", str(manifest), "--model", "pointcloud", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "ppreg pointcloud has no --reference-transform" in result.stderr
