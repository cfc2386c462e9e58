"""The convergence plot of a QC picture: cost per evaluation, one colour per level.

Accepted evaluations are joined by a line; rejected trials (a Levenberg-Marquardt step
that raised the cost) are dots. The y axis is logarithmic when every cost is positive
and they span more than a factor 10, linear otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ppreg.qc.font import GLYPH_HEIGHT, text_width
from ppreg.qc.raster import Canvas, Colour
from ppreg.registration.history import LevelRecord

LEVEL_COLOURS: tuple[Colour, ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34),
)
AXIS_COLOUR: Colour = (200, 200, 200)
GUIDE_COLOUR: Colour = (90, 90, 90)
LOG_SPAN = 10.0
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 10, 16, 16


@dataclass(frozen=True)
class Curve:
    """The costs of one pyramid level, in evaluation order."""

    label: str
    values: np.ndarray
    accepted: np.ndarray


def curves_from_levels(levels: Sequence[LevelRecord]) -> list[Curve]:
    """One curve per level record (the records every driver keeps)."""
    return [
        Curve(f"L{level.index + 1} x{level.shrink}",
              np.array([record.metric for record in level.iterations], dtype=np.float64),
              np.array([record.accepted for record in level.iterations], dtype=bool))
        for level in levels
    ]


@dataclass(frozen=True)
class _Axis:
    """A linear map from data to pixels along one direction (log10 of data when ``log``)."""

    low: float
    high: float
    pixel_low: float
    pixel_high: float
    log: bool = False

    def __call__(self, values: np.ndarray) -> np.ndarray:
        data = np.log10(values) if self.log else np.asarray(values, dtype=np.float64)
        return self.pixel_low + (data - self.low) / (self.high - self.low) * (self.pixel_high - self.pixel_low)


def nice_ticks(low: float, high: float, count: int = 5) -> np.ndarray:
    """Round tick positions (1, 2 or 5 × 10^k apart) inside [low, high]."""
    raw = (high - low) / max(count, 1)
    power = 10.0 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return np.arange(np.ceil(low / step) * step, high + step * 1e-9, step)


def _value_axis(values: np.ndarray, pixel_bottom: float, pixel_top: float) -> _Axis:
    low, high = float(values.min()), float(values.max())
    log = low > 0 and high / low > LOG_SPAN
    if log:
        low, high = np.log10(low), np.log10(high)
    padding = 0.05 * (high - low) if high > low else max(abs(high) * 0.05, 1e-12)
    return _Axis(low - padding, high + padding, pixel_bottom, pixel_top, log)


def log_ticks(low: float, high: float) -> np.ndarray:
    """Tick values (data, not log10) between 10^low and 10^high: the decades, with
    2× and 5× added when fewer than three decades fall inside."""
    decades = np.arange(np.floor(low), np.ceil(high) + 1)
    for multiples in ((1.0,), (1.0, 2.0, 5.0)):
        values = np.array([m * 10.0**d for d in decades for m in multiples])
        values = values[(np.log10(values) >= low) & (np.log10(values) <= high)]
        if len(values) >= 3:
            break
    return values


def _tick_label(value: float, log: bool) -> str:
    if not log:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}E{int(exponent)}"


def draw_convergence(canvas: Canvas, box: tuple[int, int, int, int], curves: Sequence[Curve],
                     cost_name: str) -> None:
    """Draw the plot inside ``box`` = (row, col, height, width) of ``canvas``."""
    row, col, height, width = box
    finite = [curve.values[np.isfinite(curve.values)] for curve in curves]
    if not any(values.size for values in finite):
        canvas.text(f"{cost_name}: no iterations recorded", row, col)
        return
    top, bottom = row + MARGIN_TOP, row + height - MARGIN_BOTTOM
    left, right = col + MARGIN_LEFT, col + width - MARGIN_RIGHT
    y_axis = _value_axis(np.concatenate(finite), bottom, top)
    total = sum(len(curve.values) for curve in curves)
    x_axis = _Axis(1.0, max(total, 2), left, right)
    canvas.text(f"{cost_name} per evaluation{' (log scale)' if y_axis.log else ''}", row, col)
    _draw_axes(canvas, x_axis, y_axis, top, bottom, left)
    start = 0
    for number, curve in enumerate(curves):
        colour = LEVEL_COLOURS[number % len(LEVEL_COLOURS)]
        positions = start + 1 + np.arange(len(curve.values))
        if start > 0:
            canvas.line(top, x_axis(start + 0.5), bottom, x_axis(start + 0.5), GUIDE_COLOUR, dash=3)
        canvas.text(curve.label, top + 2, int(x_axis(start + 1)) + 3, colour)
        keep = np.isfinite(curve.values)
        accepted, rejected = keep & curve.accepted, keep & ~curve.accepted
        canvas.polyline(y_axis(curve.values[accepted]), x_axis(positions[accepted]), colour)
        canvas.dots(y_axis(curve.values[accepted]), x_axis(positions[accepted]), colour, radius=1)
        canvas.dots(y_axis(curve.values[rejected]), x_axis(positions[rejected]), colour, radius=1)
        start += len(curve.values)


def _draw_axes(canvas: Canvas, x_axis: _Axis, y_axis: _Axis, top: int, bottom: int, left: int) -> None:
    canvas.line(top, left, bottom, left, AXIS_COLOUR)
    canvas.line(bottom, left, bottom, x_axis.pixel_high, AXIS_COLOUR)
    y_ticks = log_ticks(y_axis.low, y_axis.high) if y_axis.log else nice_ticks(y_axis.low, y_axis.high)
    for tick in y_ticks:
        pixel = y_axis(tick)
        label = _tick_label(tick, y_axis.log)
        canvas.line(pixel, left - 3, pixel, left, AXIS_COLOUR)
        canvas.text(label, int(pixel) - GLYPH_HEIGHT // 2, left - 5 - text_width(label), AXIS_COLOUR)
    for tick in nice_ticks(x_axis.low, x_axis.high, count=8):
        pixel = x_axis(tick)
        label = f"{int(tick)}"
        canvas.line(bottom, pixel, bottom + 3, pixel, AXIS_COLOUR)
        canvas.text(label, bottom + 5, int(pixel) - text_width(label) // 2, AXIS_COLOUR)
