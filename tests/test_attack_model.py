"""The reconstruction attack of benchmarks/attack.py: its linear model of what party1 sees
is exact, its operators are consistent, it recovers J, and --reveal-noise degrades it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import linalg as sparse_linalg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.attack_model import (  # noqa: E402
    BSplineRows, Eavesdropper, _PriorOperator, gradient_matrix, level_equations, reconstruct, reconstruct_dampings,
    scores, ssd_rows)
from ppreg.api import run_affine, run_bspline  # noqa: E402
from ppreg.config import AffineConfig, BSplineConfig  # noqa: E402
from ppreg.core.pyramid import pyramid_level  # noqa: E402
from ppreg.io.images import Image, read_image  # noqa: E402
from ppreg.secure.runtime import in_process_session  # noqa: E402
from ppreg.similarity.base import normalize_intensity  # noqa: E402

SMALL = dict(levels="2x1", smoothing="1x0", iterations="4x3")


@pytest.mark.parametrize("shape", [(7, 5), (4, 6, 3)])
def test_gradient_matrix_is_numpy_gradient(shape):
    image = np.random.default_rng(0).random(shape)
    for axis in range(len(shape)):
        assert np.allclose((gradient_matrix(shape, axis) @ image.ravel()).reshape(shape), np.gradient(image, axis=axis))


@pytest.fixture(scope="module")
def images():
    fixed = pyramid_level(read_image(ROOT / "data" / "r16.png"), 4, 1.0)  # 64², to keep the runs small
    moving = pyramid_level(read_image(ROOT / "data" / "r64.png"), 4, 1.0)
    return fixed, moving


def eavesdrop(model: str, fixed: Image, moving: Image, sigma: float = 0.0):
    config = (AffineConfig if model == "affine" else BSplineConfig)(reveal_noise=sigma, **SMALL).validate()
    with in_process_session(fixed, "clear") as proxy:
        spy = Eavesdropper(proxy)
        (run_affine if model == "affine" else run_bspline)(moving, proxy, config)
    return spy.levels


def level_truth(fixed: Image, level) -> np.ndarray:
    normalized = Image(array=normalize_intensity(fixed.array)[0], grid=fixed.grid)
    return pyramid_level(normalized, level.request.shrink, level.request.sigma).array


@pytest.mark.parametrize("model", ["affine", "bspline"])
def test_linear_model_reproduces_what_party1_received(images, model):
    fixed, moving = images
    for level in eavesdrop(model, fixed, moving):
        truth = level_truth(fixed, level).ravel()
        if model == "affine":
            equations, values = ssd_rows(level)
        else:
            equations = BSplineRows(level)
            values = equations.values
        assert np.allclose(equations @ truth, values, rtol=1e-9, atol=1e-9 * np.abs(values).max())


def test_bspline_operator_adjoint(images):
    fixed, moving = images
    operator = BSplineRows(eavesdrop("bspline", fixed, moving)[0])
    rng = np.random.default_rng(1)
    image, values = rng.normal(size=operator.shape[1]), rng.normal(size=operator.shape[0])
    assert np.isclose((operator @ image) @ values, image @ operator.rmatvec(values), rtol=1e-10)
    dense = np.vstack([operator.rmatvec(unit) for unit in np.eye(operator.shape[0])[:5]])
    assert np.allclose(np.linalg.norm(dense, axis=1), operator.row_norms()[:5])


def test_bspline_attack_recovers_j_and_noise_spoils_it(images):
    fixed, moving = images
    mask = level_truth(fixed, eavesdrop("bspline", fixed, moving)[-1]) > 0.05
    correlations = {}
    for sigma in (0.0, 0.3):
        level = eavesdrop("bspline", fixed, moving, sigma)[-1]
        operator, truth = BSplineRows(level), level_truth(fixed, level)
        estimate = np.clip(reconstruct(operator, operator.values, operator.row_norms(), truth.shape, 1e-3, 0.5), 0, 1)
        correlations[sigma] = scores(estimate, truth, mask)["correlation"]
    assert correlations[0.0] > 0.8
    assert correlations[0.3] < correlations[0.0] - 0.3


@pytest.mark.parametrize("model", ["affine", "bspline"])
def test_one_factorisation_serves_every_damping(images, model):
    """reconstruct_dampings equals a separate solve per damping: the dual system for affine,
    scipy's LSQR (same step count) for the B-spline."""
    fixed, moving = images
    level = eavesdrop(model, fixed, moving)[-1]
    equations, values, norms = level_equations(model, level)
    shape, dampings = level.grid.shape, (1e-3, 1.0, 10.0)
    estimates = reconstruct_dampings(equations, values, norms, shape, dampings, 1.0, 40)
    operator = _PriorOperator(equations, 1.0 / norms, shape, 1.0, offset=100.0)
    for damping, estimate in zip(dampings, estimates):
        if model == "affine":
            rows = np.vstack([operator.rmatvec(unit) for unit in np.eye(len(values))])
            dual = np.linalg.solve(rows @ rows.T + damping**2 * np.eye(len(values)), values / norms)
            separate = operator.image(rows.T @ dual)
        else:
            solution = sparse_linalg.lsqr(operator, values / norms, damp=damping, iter_lim=40, atol=0, btol=0)[0]
            separate = operator.image(solution)
        assert np.max(np.abs(estimate - separate)) <= 1e-2 * np.max(np.abs(separate)), damping
