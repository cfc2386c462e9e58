"""The QC picture (``PREFIXqc.png``): image panels above a convergence plot.

Layout, top to bottom (every panel is a PANEL × PANEL cell with a title line above it,
the slice letterboxed in it with square millimetre pixels):

- a header line saying what is shown;
- with the fixed image: a checkerboard of fixed and warped moving (the top-left tile is
  the fixed image) and the fixed image's edges (red) drawn over the warped moving; a 2D
  image gives these two panels side by side, a 3D image two rows (checkerboards, then
  edge overlays) of three columns (axial, coronal, sagittal middle slices, radiological
  convention);
- without the fixed image (party1 in ``--peer`` mode never holds it): the warped moving
  image only, one panel (2D) or three (3D);
- the cost per evaluation for every pyramid level (registration/history.py records).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from ppreg.io.images import Image
from ppreg.qc.panels import (
    checkerboard, display_slices, edges, fit_to_panel, gray_rgb, intensity_window, overlay, windowed,
)
from ppreg.qc.plot import curves_from_levels, draw_convergence
from ppreg.qc.raster import Canvas
from ppreg.registration.history import LevelRecord

PANEL = 256
GAP = 8
TITLE = 14
PLOT_HEIGHT = 200
EDGE_COLOUR = (255, 40, 40)
CELL_BACKGROUND = (24, 24, 24)
NO_FIXED_NOTE = "party1 has no fixed image (--peer): the QC picture shows the warped moving image only"


@dataclass(frozen=True)
class QcPicture:
    """A drawn QC picture.

    Attributes
    ----------
    rgb : ndarray, shape (height, width, 3), uint8
    panels : dict of str to (row, col, height, width)
        Where each panel's image lies in ``rgb`` (the convergence plot under "convergence").
    fixed_shown : bool
        False when the picture was drawn without the fixed image.
    """

    rgb: np.ndarray
    panels: dict[str, tuple[int, int, int, int]]
    fixed_shown: bool


def qc_picture(warped: Image, fixed: Image | None, levels: Sequence[LevelRecord],
               cost_name: str = "cost") -> QcPicture:
    """Draw the QC picture of a registration.

    Parameters
    ----------
    warped : Image
        The moving image resampled onto the fixed grid.
    fixed : Image or None
        The fixed image (same grid as ``warped``), or None when this party does not hold it.
    levels : sequence of LevelRecord
        The driver's per-level records; their costs make the convergence plot.
    cost_name : str
        What the cost is (plot title), e.g. "mean squared difference".
    """
    cells = _cells(warped, fixed)
    columns = max(len(display_slices(warped)), 2)
    rows = -(-len(cells) // columns)
    width = GAP + columns * (PANEL + GAP)
    height = TITLE + GAP + rows * (TITLE + PANEL + GAP) + TITLE + PLOT_HEIGHT + GAP
    canvas = Canvas(height, width)
    header = "ppreg qc: fixed vs warped moving" if fixed is not None else \
        "ppreg qc: warped moving only - party1 has no fixed image"
    canvas.text(header, GAP // 2, GAP)
    panels = {}
    for number, (name, title, rgb) in enumerate(cells):
        top = TITLE + GAP + (number // columns) * (TITLE + PANEL + GAP)
        left = GAP + (number % columns) * (PANEL + GAP)
        canvas.text(title, top, left)
        canvas.fill(top + TITLE, left, PANEL, PANEL, CELL_BACKGROUND)
        row, col = top + TITLE + (PANEL - rgb.shape[0]) // 2, left + (PANEL - rgb.shape[1]) // 2
        canvas.paste(rgb, row, col)
        panels[name] = (row, col, rgb.shape[0], rgb.shape[1])
    plot_box = (height - PLOT_HEIGHT - GAP, GAP, PLOT_HEIGHT, width - 2 * GAP)
    draw_convergence(canvas, plot_box, curves_from_levels(levels), cost_name)
    panels["convergence"] = plot_box
    return QcPicture(canvas.pixels, panels, fixed is not None)


def _cells(warped: Image, fixed: Image | None) -> list[tuple[str, str, np.ndarray]]:
    """(panel name, title, rgb) of every image panel, in reading order."""
    warped_window = intensity_window(warped.array)
    warped_slices = display_slices(warped)
    if fixed is None:
        return [(_name("warped", s.name), _title("warped moving", s.name),
                 gray_rgb(windowed(fit_to_panel(s, PANEL), warped_window))) for s in warped_slices]
    if fixed.array.shape != warped.array.shape:
        raise ValueError(f"fixed {fixed.array.shape} and warped {warped.array.shape} differ in shape")
    fixed_window = intensity_window(fixed.array)
    boards, overlays = [], []
    for fixed_slice, warped_slice in zip(display_slices(fixed), warped_slices):
        fixed_shown = windowed(fit_to_panel(fixed_slice, PANEL), fixed_window)
        warped_shown = windowed(fit_to_panel(warped_slice, PANEL), warped_window)
        zoom = fixed_shown.shape[0] / fixed_slice.values.shape[0]
        boards.append((_name("checkerboard", fixed_slice.name),
                       _title("checkerboard (top left: fixed)", fixed_slice.name),
                       gray_rgb(checkerboard(fixed_shown, warped_shown))))
        overlays.append((_name("edges", fixed_slice.name), _title("fixed edges on warped moving", fixed_slice.name),
                         overlay(warped_shown, edges(fixed_shown, sigma=max(1.0, 0.8 * zoom)), EDGE_COLOUR)))
    return boards + overlays


def _name(kind: str, orientation: str) -> str:
    return f"{kind} {orientation}".strip()


def _title(what: str, orientation: str) -> str:
    return f"{orientation}: {what}" if orientation else what


def write_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Write an (h, w, 3) uint8 array as an RGB PNG through SimpleITK."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(rgb, dtype=np.uint8), isVector=True)
    sitk.WriteImage(image, str(path))
    return Path(path)


def qc_report_entry(picture: QcPicture, path: str | Path) -> dict:
    """The report's ``qc`` section: where the picture is and what it shows."""
    return {
        "path": str(path),
        "fixed_shown": picture.fixed_shown,
        "panels": [name for name in picture.panels],
        "note": None if picture.fixed_shown else NO_FIXED_NOTE,
    }
