"""QC pictures: layout, checkerboard, 3D orientations, and `ppreg affine --qc` outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from ppreg.api import run_affine, write_affine_outputs
from ppreg.cli.app import app
from ppreg.config import AffineConfig, load_config
from ppreg.io.images import Grid, Image, read_image
from ppreg.qc import qc_picture, write_png
from ppreg.qc.panels import checker_tile, checkerboard
from ppreg.qc.picture import GAP, NO_FIXED_NOTE, PANEL, PLOT_HEIGHT, TITLE
from ppreg.qc.plot import LEVEL_COLOURS
from ppreg.registration.history import IterationRecord, LevelRecord
from ppreg.secure.runtime import in_process_session
from ppreg.secure.session import Traffic

DATA = Path(__file__).resolve().parents[1] / "data"
FAST = ["--levels", "4x2x1", "--smoothing", "2x1x0", "--iterations", "10x5x3"]


def image(array: np.ndarray, spacing) -> Image:
    dim = array.ndim
    grid = Grid(size=tuple(reversed(array.shape)), spacing=np.asarray(spacing, dtype=np.float64),
                origin=np.zeros(dim), direction=np.eye(dim))
    return Image(array=np.asarray(array, dtype=np.float64), grid=grid)


def levels(*costs: list[float]) -> list[LevelRecord]:
    records = []
    for index, values in enumerate(costs):
        level = LevelRecord(index, 2 ** (len(costs) - index - 1), 1.0, 100, 0.0, Traffic())
        level.iterations = [IterationRecord(index, value, 0.01, Traffic(), accepted=value <= min(values[:i + 1]))
                            for i, value in enumerate(values)]
        records.append(level)
    return records


def picture_height(image_rows: int) -> int:
    return TITLE + GAP + image_rows * (TITLE + PANEL + GAP) + TITLE + PLOT_HEIGHT + GAP


def test_checkerboard_alternates_sources():
    first, second = np.zeros((64, 48)), np.ones((64, 48))
    board = checkerboard(first, second)
    tile = checker_tile(board.shape)
    assert tile == 8
    for tile_row in range(8):
        for tile_col in range(6):
            block = board[tile_row * tile:(tile_row + 1) * tile, tile_col * tile:(tile_col + 1) * tile]
            assert np.all(block == (tile_row + tile_col) % 2), (tile_row, tile_col)


def test_checkerboard_panel_shows_fixed_then_warped():
    rng = np.random.default_rng(0)
    fixed = image((rng.random((64, 64)) < 0.02).astype(float), (1.0, 1.0))    # mostly dark
    warped = image((rng.random((64, 64)) > 0.02).astype(float), (1.0, 1.0))  # mostly bright
    picture = qc_picture(warped, fixed, levels([1.0, 0.5]))
    row, col, height, width = picture.panels["checkerboard"]
    panel = picture.rgb[row:row + height, col:col + width, 0].astype(float)
    tile = checker_tile(panel.shape)
    for tile_row in range(2):
        for tile_col in range(3):
            mean = panel[tile_row * tile:(tile_row + 1) * tile, tile_col * tile:(tile_col + 1) * tile].mean()
            assert (mean > 170) if (tile_row + tile_col) % 2 else (mean < 85), (tile_row, tile_col, mean)


def test_qc_png_2d_is_rgb_of_the_layout_size(tmp_path):
    fixed = read_image(DATA / "r16.png")
    picture = qc_picture(read_image(DATA / "r64.png"), fixed, levels([1.0, 2.0, 0.5], [0.4, 0.3]))
    path = write_png(picture.rgb, tmp_path / "qc.png")
    written = sitk.ReadImage(str(path))
    assert written.GetNumberOfComponentsPerPixel() == 3
    assert written.GetPixelID() == sitk.sitkVectorUInt8
    assert written.GetSize() == (GAP + 2 * (PANEL + GAP), picture_height(1))
    assert np.array_equal(sitk.GetArrayFromImage(written), picture.rgb)
    assert set(picture.panels) == {"checkerboard", "edges", "convergence"}
    assert picture.panels["checkerboard"][2:] == (PANEL, PANEL)  # 256 × 256 pixels of 1 mm
    edges_row, edges_col, height, width = picture.panels["edges"]
    overlay = picture.rgb[edges_row:edges_row + height, edges_col:edges_col + width]
    assert np.any((overlay[..., 0] == 255) & (overlay[..., 1] == 40)), "no fixed edges drawn"
    row, col, height, width = picture.panels["convergence"]
    plot = picture.rgb[row:row + height, col:col + width]
    for colour in LEVEL_COLOURS[:2]:
        assert np.any(np.all(plot == colour, axis=-1)), f"level colour {colour} missing from the plot"


def test_qc_3d_has_three_orientation_panels_with_physical_aspect():
    rng = np.random.default_rng(1)
    volume = rng.random((20, 30, 40))  # (z, y, x); z voxels are 3 mm, x and y 1 mm
    picture = qc_picture(image(volume, (1.0, 1.0, 3.0)), image(volume[::-1], (1.0, 1.0, 3.0)), levels([3.0, 1.0]))
    assert picture.rgb.shape == (picture_height(2), GAP + 3 * (PANEL + GAP), 3)
    for kind in ("checkerboard", "edges"):
        assert {f"{kind} {o}" for o in ("axial", "coronal", "sagittal")} <= set(picture.panels)
    _, _, axial_rows, axial_cols = picture.panels["checkerboard axial"]        # y (30 mm) × x (40 mm)
    _, _, coronal_rows, coronal_cols = picture.panels["checkerboard coronal"]  # z (60 mm) × x (40 mm)
    assert (axial_rows, axial_cols) == (192, 256)
    assert (coronal_rows, coronal_cols) == (256, 171)


def test_without_fixed_only_the_warped_image_is_shown():
    volume = np.random.default_rng(2).random((16, 16, 16))
    picture = qc_picture(image(volume, (2.0, 2.0, 2.0)), None, levels([1.0]))
    assert not picture.fixed_shown
    assert set(picture.panels) == {"warped axial", "warped coronal", "warped sagittal", "convergence"}
    assert picture.rgb.shape[0] == picture_height(1)


def test_affine_qc_option_writes_the_picture_and_reports_it(tmp_path):
    prefix = tmp_path / "run_"
    result = CliRunner().invoke(app, ["affine", str(DATA / "r64.png"), str(DATA / "r16.png"), "-o", str(prefix),
                                      "--qc", "--quiet", *FAST])
    assert result.exit_code == 0, result.output
    report = json.loads(Path(f"{prefix}report.json").read_text())
    assert report["outputs"]["qc"] == f"{prefix}qc.png"
    assert report["qc"]["fixed_shown"] and report["qc"]["note"] is None
    assert sitk.ReadImage(f"{prefix}qc.png").GetNumberOfComponentsPerPixel() == 3


def test_a_failure_while_writing_leaves_no_qc_picture(tmp_path, monkeypatch):
    def broken_report(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("ppreg.api.write_report", broken_report)
    result = CliRunner().invoke(app, ["affine", str(DATA / "r64.png"), str(DATA / "r16.png"),
                                      "-o", str(tmp_path / "run_"), "--qc", "--quiet", *FAST])
    assert result.exit_code == 1
    assert list(tmp_path.iterdir()) == []


def test_party1_without_the_fixed_image_gets_a_warped_only_picture(tmp_path):
    """What `--peer` does: party1 holds only the fixed grid, never the fixed image."""
    moving, fixed = read_image(DATA / "r64.png"), read_image(DATA / "r16.png")
    config = load_config(AffineConfig, None, {"levels": "4x2", "smoothing": "2x1", "iterations": "5x3"})
    with in_process_session(fixed, "clear") as proxy:
        outcome = run_affine(moving, proxy, config)
    outputs = write_affine_outputs(outcome, moving, DATA / "r64.png", "party2 at host:1", str(tmp_path / "p1_"),
                                   qc=True, fixed=None)
    report = json.loads(Path(outputs["report"]).read_text())
    assert report["qc"] == {"path": outputs["qc"], "fixed_shown": False, "panels": ["warped", "convergence"],
                            "note": NO_FIXED_NOTE}
    assert Path(outputs["qc"]).is_file()


def test_fixed_and_warped_must_share_the_grid():
    with pytest.raises(ValueError):
        qc_picture(image(np.zeros((16, 16)), (1, 1)), image(np.zeros((10, 12)), (1, 1)), levels([1.0]))
