"""Dispatch from a level request to the metric's fixed-side operand (party2's G)."""

from __future__ import annotations

import numpy as np

from ppreg.errors import ConfigError
from ppreg.core.bspline import ControlGrid
from ppreg.io.images import Grid, Image
from ppreg.similarity.base import FixedOperand, LevelRequest
from ppreg.similarity.mi import mi_fixed_operand
from ppreg.similarity.points import POINTS_METRIC, points_fixed_operand
from ppreg.similarity.ssd import ssd_fixed_operand
from ppreg.similarity.ssd_bspline import bspline_fixed_operand, bspline_pattern

METRICS = ("ssd", "mi", "bspline", POINTS_METRIC)


def build_fixed_operand(request: LevelRequest, fixed_level: Image, sample_index: np.ndarray | None) -> FixedOperand:
    """G for ``request.metric`` on the (normalised, smoothed, shrunk) fixed level image."""
    if request.metric == "ssd":
        return ssd_fixed_operand(fixed_level, request.model, sample_index)
    if request.metric == "mi":
        return mi_fixed_operand(fixed_level, request.model, sample_index, request.bins)
    if request.metric == POINTS_METRIC:
        return points_fixed_operand(fixed_level, request)
    if request.metric == "bspline":
        return bspline_fixed_operand(fixed_level, ControlGrid.from_meta(request.params["control_grid"]), sample_index)
    raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {request.metric!r}")


def operand_columns(request: LevelRequest) -> int:
    """q, the number of columns of G, known to both parties from the request."""
    if request.metric == "ssd":
        return request.model.n_params + 1
    if request.metric == POINTS_METRIC:
        return request.model.dim
    if request.metric == "bspline":
        return ControlGrid.from_meta(request.params["control_grid"]).n_points + 1
    return request.bins * (request.model.dim + 1)


def operand_pattern(request: LevelRequest, grid: Grid, sample_index: np.ndarray | None) -> np.ndarray | None:
    """The public sparsity pattern (N × s column indices) of G, or None for a dense G.

    Every party (and the dealer) derives it from public geometry: it never travels.
    """
    if request.metric == "bspline":
        return bspline_pattern(grid, ControlGrid.from_meta(request.params["control_grid"]), sample_index)
    return None
