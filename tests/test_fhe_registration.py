"""fhe1 / fhe2 inside a real affine registration: same result as clear, paper-sized traffic;
metrics an engine cannot compute are refused before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import ppreg.secure.engines as engines
from ppreg.api import run_affine, transform_difference
from ppreg.cli.app import app
from ppreg.config import AffineConfig, load_config
from ppreg.errors import EngineUnavailableError
from ppreg.io.images import read_image
from ppreg.secure.runtime import in_process_session
from ppreg.synthetic import known_affine, warp_with

DATA = Path(__file__).resolve().parents[1] / "data"
PAPER_MB_PER_ITERATION = {"party1": 0.72, "party2": 0.88}  # PPIR(FHE)-v2 + URS, paper Table 2


def register(fixed, moving, pet: str, overrides: dict):
    config = load_config(AffineConfig, None, {**overrides, "pet": pet})
    with in_process_session(fixed, pet) as proxy:
        return run_affine(moving, proxy, config)


@pytest.mark.parametrize(
    ("pet", "overrides"),
    [
        ("fhe2", {"sampling": "urs"}),
        ("fhe2", {"sampling": "gms"}),
        ("fhe1", {"sampling": "urs", "levels": "4x2", "smoothing": "2x1", "iterations": "15x10"}),
    ],
    ids=["fhe2-urs", "fhe2-gms", "fhe1-urs"],
)
def test_known_transform_matches_clear(pet, overrides):
    fixed = read_image(DATA / "brain_t1_slice.png")
    truth = known_affine(2, 6.0, (4.0, -3.0), 0.05, fixed.grid.center())
    moving = warp_with(fixed, *truth)
    clear = register(fixed, moving, "clear", overrides)
    secure = register(fixed, moving, pet, overrides)
    difference = transform_difference(clear.sitk_transform(), secure.sitk_transform(), fixed.grid)
    assert difference["rmse_mm"] <= 0.5  # pixels of 1 mm
    iterations = sum(len(level.iterations) for level in secure.result.levels)
    for party, limit in PAPER_MB_PER_ITERATION.items():
        assert getattr(secure.total_traffic, party) / iterations / 1e6 < limit


@pytest.mark.parametrize(("arguments", "message"), [
    (["affine", "--pet", "fhe2", "--metric", "mi"], "--pet fhe2 does not support affine --metric mi"),
    (["affine", "--pet", "fhe1", "--metric", "mi"], "use --pet clear or mpc"),
    (["bspline", "--pet", "fhe1"], "--pet fhe1 does not support ppreg bspline"),
])
def test_cli_refuses_an_unsupported_metric_before_connecting(tmp_path, arguments, message):
    """Exit 2 with the engine's own message; --peer names a closed port, so reaching the
    network would have been exit 3."""
    command, *options = arguments
    result = CliRunner().invoke(app, [command, str(DATA / "brain_t1_slice.png"), "--peer", "127.0.0.1:9",
                                      "-o", str(tmp_path / "x_"), "--quiet", *options])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not list(tmp_path.iterdir())


def test_supported_metrics_per_engine():
    assert engines.supports("fhe2", "bspline") and not engines.supports("fhe1", "bspline")
    assert engines.supports("mpc", "mi") and engines.supports("clear", "mi")
    assert not any(engines.supports(pet, "mi") for pet in ("fhe1", "fhe2"))
    assert all(engines.supports(pet, metric) for pet in ("fhe1", "fhe2") for metric in ("ssd", "points"))
    engines.check_available("fhe2", "ssd")
    with pytest.raises(EngineUnavailableError, match="use --pet clear, mpc or fhe2"):
        engines.check_available("fhe1", "bspline")
