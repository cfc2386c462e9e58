"""Dispatch from a level request to the metric's fixed-side operand (party2's G)."""

from __future__ import annotations

import numpy as np

from ppreg.errors import ConfigError
from ppreg.io.images import Image
from ppreg.similarity.base import FixedOperand, LevelRequest
from ppreg.similarity.mi import mi_fixed_operand
from ppreg.similarity.points import POINTS_METRIC, points_fixed_operand
from ppreg.similarity.ssd import ssd_fixed_operand

METRICS = ("ssd", "mi")


def build_fixed_operand(request: LevelRequest, fixed_level: Image, sample_index: np.ndarray | None) -> FixedOperand:
    """G for ``request.metric`` on the (normalised, smoothed, shrunk) fixed level image."""
    if request.metric == "ssd":
        return ssd_fixed_operand(fixed_level, request.model, sample_index)
    if request.metric == "mi":
        return mi_fixed_operand(fixed_level, request.model, sample_index, request.bins)
    if request.metric == POINTS_METRIC:
        return points_fixed_operand(fixed_level, request)
    raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {request.metric!r}")


def operand_columns(request: LevelRequest) -> int:
    """q, the number of columns of G, known to both parties from the request."""
    if request.metric == "ssd":
        return request.model.n_params + 1
    if request.metric == POINTS_METRIC:
        return request.model.dim
    return request.bins * (request.model.dim + 1)
