"""The JSON report (schema 1, DESIGN.md §4), written atomically."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ppreg import __version__
from ppreg.io.images import write_atomically

SCHEMA = 1


def versions() -> dict:
    return {
        "ppreg": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "simpleitk": sitk.Version_VersionString(),
    }


def image_description(path, grid) -> dict:
    return {
        "path": None if path is None else str(path),
        "dim": grid.dim,
        "size": list(grid.size),
        "spacing_mm": grid.spacing.tolist(),
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(report: dict, path: str | Path) -> Path:
    """Write ``report`` as JSON with ``schema`` and the command line filled in."""
    path = Path(path)
    content = {"schema": SCHEMA, "command": sys.argv, "versions": versions(), **report}
    text = json.dumps(_jsonable(content), indent=2)
    write_atomically(path, lambda tmp: tmp.write_text(text + "\n"), suffix=".json")
    return path
