"""A small RGB canvas: paste images, draw lines, dots and text (no plotting library)."""

from __future__ import annotations

import numpy as np

from ppreg.qc.font import text_mask

Colour = tuple[int, int, int]


class Canvas:
    """An RGB picture being drawn on.

    Attributes
    ----------
    pixels : ndarray, shape (height, width, 3), uint8
        Row 0 is the top of the picture; drawing outside it is clipped.
    """

    def __init__(self, height: int, width: int, background: Colour = (0, 0, 0)):
        self.pixels = np.empty((height, width, 3), dtype=np.uint8)
        self.pixels[:] = background

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    def paste(self, rgb: np.ndarray, row: int, col: int) -> None:
        """Copy an (h, w, 3) uint8 image with its top-left corner at (row, col)."""
        height, width = rgb.shape[:2]
        self.pixels[row:row + height, col:col + width] = rgb

    def fill(self, row: int, col: int, height: int, width: int, colour: Colour) -> None:
        self.pixels[max(row, 0):max(row + height, 0), max(col, 0):max(col + width, 0)] = colour

    def dots(self, rows: np.ndarray, cols: np.ndarray, colour: Colour, radius: int = 0) -> None:
        """Square dots of side 2·radius + 1 centred on integer (row, col) positions."""
        rows, cols = np.rint(rows).astype(int), np.rint(cols).astype(int)
        for d_row in range(-radius, radius + 1):
            for d_col in range(-radius, radius + 1):
                r, c = rows + d_row, cols + d_col
                inside = (r >= 0) & (r < self.height) & (c >= 0) & (c < self.width)
                self.pixels[r[inside], c[inside]] = colour

    def line(self, row0: float, col0: float, row1: float, col1: float, colour: Colour,
             dash: int = 0) -> None:
        """A one-pixel line between two points; ``dash`` > 0 draws dash-long pieces with gaps."""
        steps = int(max(abs(row1 - row0), abs(col1 - col0))) + 1
        fraction = np.linspace(0.0, 1.0, steps)
        rows, cols = row0 + fraction * (row1 - row0), col0 + fraction * (col1 - col0)
        if dash > 0:
            keep = (np.arange(steps) // dash) % 2 == 0
            rows, cols = rows[keep], cols[keep]
        self.dots(rows, cols, colour)

    def polyline(self, rows: np.ndarray, cols: np.ndarray, colour: Colour) -> None:
        for index in range(len(rows) - 1):
            self.line(rows[index], cols[index], rows[index + 1], cols[index + 1], colour)

    def text(self, text: str, row: int, col: int, colour: Colour = (255, 255, 255)) -> None:
        """``text`` in the 5×7 font with its top-left corner at (row, col), clipped."""
        mask = text_mask(text)
        ink_rows, ink_cols = np.nonzero(mask)
        self.dots(ink_rows + row, ink_cols + col, colour)
