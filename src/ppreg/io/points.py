"""Point sets (landmarks) in physical space, read from and written to CSV.

A CSV file holds one point per row, ``x,y`` or ``x,y,z`` in mm (LPS physical space, as
images), with an optional header row. Rows of the moving and fixed files correspond.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppreg.errors import InputError
from ppreg.io.images import write_atomically

DEGENERATE_RATIO = 1e-6  # smallest / largest singular value of the centred points


@dataclass(frozen=True)
class PointSet:
    """Corresponding landmarks of one party.

    Attributes
    ----------
    points : ndarray, shape (N, d), float64
        Physical coordinates in mm (LPS), d = 2 or 3.
    """

    points: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    @property
    def count(self) -> int:
        return int(self.points.shape[0])


def check_point_set(points: np.ndarray, label: str = "point set") -> PointSet:
    """Validate an (N, d) array as a registrable point set.

    Raises InputError for a wrong shape, NaN/infinite values, fewer than d + 1 points or
    a degenerate set (all points on a line in 2D, on a plane in 3D: the centred points
    have rank < d, i.e. smallest/largest singular value below ``DEGENERATE_RATIO``).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise InputError(f"{label}: expected 2 or 3 columns (x,y[,z] in mm), got shape {points.shape}")
    dim = points.shape[1]
    if not np.all(np.isfinite(points)):
        raise InputError(f"{label} contains NaN or infinite coordinates")
    if len(points) < dim + 1:
        raise InputError(f"{label} has {len(points)} points; a {dim}D rigid registration needs at least {dim + 1}")
    singular = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
    if singular[-1] <= DEGENERATE_RATIO * singular[0]:
        shape = "on a line" if dim == 2 else "on a plane or a line"
        raise InputError(f"{label} is degenerate: its points lie {shape} (rank < {dim}), so the rotation is undetermined")
    return PointSet(points=points)


def read_points(path: str | os.PathLike, expect_dim: int | None = None) -> PointSet:
    """Read a CSV point file (``x,y[,z]`` in mm, optional header row) and validate it.

    Raises InputError for a missing or unreadable file, a non-numeric value, rows with
    different column counts, NaN, too few points, a degenerate set, or a dimension other
    than ``expect_dim``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"point file not found: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read point file {path}: {error}") from None
    rows = [(number, [field.strip() for field in row]) for number, row in enumerate(csv.reader(io.StringIO(text)), 1)
            if any(field.strip() for field in row)]
    if rows and not _is_numeric_row(rows[0][1]):
        rows = rows[1:]  # header
    if not rows:
        raise InputError(f"{path} contains no points")
    width = len(rows[0][1])
    for number, fields in rows:
        if len(fields) != width or width not in (2, 3):
            raise InputError(f"{path}, line {number}: expected the same 2 or 3 columns (x,y[,z]) on every row, "
                             f"got {len(fields)}")
    values = np.array([_parse_row(path, number, fields) for number, fields in rows])
    points = check_point_set(values, str(path))
    if expect_dim is not None and points.dim != expect_dim:
        raise InputError(f"{path} holds {points.dim}D points but the other point set is {expect_dim}D")
    return points


def _is_numeric_row(fields: list[str]) -> bool:
    try:
        [float(field) for field in fields]
    except ValueError:
        return False
    return True


def _parse_row(path: Path, number: int, fields: list[str]) -> list[float]:
    try:
        return [float(field) for field in fields]
    except ValueError:
        bad = next(field for field in fields if not _is_numeric_row([field]))
        raise InputError(f"{path}, line {number}: non-numeric value {bad!r}") from None


def write_points(points: np.ndarray, path: str | os.PathLike) -> Path:
    """Write (N, d) points in mm as CSV with an ``x,y[,z]`` header, atomically."""
    path = Path(path)
    points = np.asarray(points, dtype=np.float64)
    header = ",".join("xyz"[: points.shape[1]])
    lines = [header] + [",".join(f"{value:.12g}" for value in row) for row in points]
    write_atomically(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"), suffix=".csv")
    return path
