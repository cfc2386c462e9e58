"""--reveal-noise: calibrated noise on the revealed joint terms, added by party2 (mpc) or
where party1 computes the product (clear); refused by engines that cannot add it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ppreg.cli.app import app
from ppreg.config import AffineConfig, BSplineConfig, load_config
from ppreg.core.transforms import AffineModel
from ppreg.errors import ConfigError, EngineUnavailableError
from ppreg.io.images import Grid, Image, read_image
from ppreg.secure.engines import client_for, server_for
from ppreg.secure.reveal_noise import RevealNoise, operand_column_norms
from ppreg.secure.runtime import in_process_session
from ppreg.secure.session import FixedParty, FixedPartyProxy
from ppreg.similarity.base import DenseOperand, LevelRequest, SparseOperand
from ppreg.transport.channel import local_pair

DATA = Path(__file__).resolve().parents[1] / "data"


def test_noise_has_the_calibrated_spread_per_column():
    rng = np.random.default_rng(0)
    dense = DenseOperand(dense=rng.normal(size=(500, 3)) * [1.0, 5.0, 0.1])
    sparse = SparseOperand(columns=np.array([[0, 2], [1, 2], [0, 1]]), values=np.array([[3.0, 4.0], [1.0, 0.0], [4.0, 2.0]]),
                           n_columns=4)
    assert np.allclose(operand_column_norms(sparse), [5.0, np.sqrt(5.0), 4.0, 0.0])
    noise = RevealNoise(0.5, dense).sample(20000)
    assert noise.shape == (20000, 3)
    assert np.allclose(noise.std(axis=0), 0.5 * np.linalg.norm(dense.dense, axis=0), rtol=0.03)
    assert not np.any(RevealNoise(0.0, dense).sample(2))


def _level(size: int = 24):
    grid = Grid(size=(size, size), spacing=np.ones(2), origin=np.zeros(2), direction=np.eye(2))
    image = Image(array=np.random.default_rng(1).random((size, size)), grid=grid)
    model = AffineModel("affine", 2, grid.center(), grid.half_extent())
    return image, LevelRequest("ssd", 1, 0.0, model)


@pytest.mark.parametrize("pet", ["clear", "mpc"])
def test_revealed_products_carry_noise_of_the_announced_size(pet):
    fixed, request = _level()
    features = np.random.default_rng(2).random((fixed.grid.n_voxels, 1))
    selection = np.ones((1, 7), dtype=bool)
    products = {}
    for sigma in (0.0, 0.2):
        with in_process_session(fixed, pet) as proxy:
            proxy.reveal_noise = sigma
            proxy.hello(2, "affine")
            assert proxy.reveal_noise == sigma
            proxy.start_level(0, request, None)
            products[sigma] = np.vstack([proxy.product(features, selection) for _ in range(300)])
            proxy.close()
    exact = products[0.0][0]
    assert np.allclose(products[0.0], exact, atol=1e-4)  # no noise: every evaluation equal
    from ppreg.similarity.ssd import ssd_fixed_operand
    from ppreg.similarity.base import normalize_intensity

    normalized = Image(array=normalize_intensity(fixed.array)[0], grid=fixed.grid)
    expected = 0.2 * operand_column_norms(ssd_fixed_operand(normalized, request.model, None))
    deviation = products[0.2] - exact
    assert np.allclose(deviation.mean(axis=0), 0, atol=4 * expected / np.sqrt(300))
    assert np.allclose(deviation.std(axis=0), expected, rtol=0.15)


def test_party2_floor_wins_over_a_smaller_request():
    fixed, _ = _level()
    party1_end, party2_end = local_pair("party1", "party2", timeout=10)
    party2 = FixedParty(fixed, {"clear": lambda meta: server_for("clear")}, reveal_noise=0.3)
    import threading

    thread = threading.Thread(target=lambda: _serve_quietly(party2, party2_end), daemon=True)
    thread.start()
    proxy = FixedPartyProxy(channel=party1_end, engine=client_for("clear"), session="s", reveal_noise=0.1)
    proxy.hello(2, "affine")
    assert proxy.reveal_noise == 0.3
    proxy.close()
    thread.join(timeout=10)


def _serve_quietly(party2, channel):
    try:
        party2.serve(channel)
    except Exception:  # noqa: BLE001 - the test checks party1's side
        pass


def test_fhe_refuses_reveal_noise_with_a_clear_message():
    fixed, _ = _level()
    with pytest.raises(EngineUnavailableError, match="--reveal-noise is not available with --pet fhe"):
        with in_process_session(fixed, "fhe2") as proxy:
            proxy.reveal_noise = 0.1
            proxy.hello(2, "affine")


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf")])
def test_config_refuses_bad_sigma(value):
    for config in (AffineConfig, BSplineConfig):
        with pytest.raises(ConfigError, match="reveal_noise"):
            load_config(config, None, {"reveal_noise": value})


def test_report_lists_sigma_and_counts(tmp_path):
    result = CliRunner().invoke(app, ["affine", str(DATA / "r64.png"), str(DATA / "r16.png"), "--levels", "8",
                                      "--smoothing", "2", "--iterations", "5", "--reveal-noise", "0.5",
                                      "-o", str(tmp_path / "n_"), "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "n_report.json").read_text())
    revealed = report["privacy"]["revealed_to_party1"]
    assert revealed["reveal_noise"]["sigma"] == 0.5
    assert revealed["values_total"] == revealed["evaluations"] * 7 + 43
    assert report["config"]["reveal_noise"] == 0.5
