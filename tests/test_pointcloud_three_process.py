"""ppreg pointcloud across three real processes: dealer, party2 (serve FIXED.csv), party1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ppreg.io.points import read_points, write_points
from ppreg.transport.keys import make_keys
from test_pointcloud import brain_case
from test_three_process import DATA, party1, start, stop


@pytest.fixture()
def case(tmp_path):
    fixed, moving, *_ = brain_case(3)
    write_points(fixed, tmp_path / "fixed.csv")
    write_points(moving, tmp_path / "moving.csv")
    write_points(moving[:-1], tmp_path / "short.csv")
    return tmp_path


@pytest.fixture()
def point_servers(case):
    certs = case / "certs"
    make_keys(certs)
    dealer, dealer_port = start(["dealer", "--listen", "127.0.0.1:0", "--certs", str(certs)], r"port (\d+)")
    party2, party2_port = start(
        ["serve", str(case / "fixed.csv"), "--listen", "127.0.0.1:0", "--certs", str(certs), "--pets", "mpc",
         "--dealer", f"127.0.0.1:{dealer_port}"], r"port (\d+)")
    yield ["--peer", f"127.0.0.1:{party2_port}", "--dealer", f"127.0.0.1:{dealer_port}", "--certs", str(certs)]
    stop(party2, dealer)


def test_served_point_file_gives_the_in_process_transform(case, point_servers):
    remote = party1(["pointcloud", str(case / "moving.csv"), *point_servers, "--pet", "mpc",
                     "-o", str(case / "remote_"), "--quiet"])
    assert remote.returncode == 0, remote.stderr
    local = party1(["pointcloud", str(case / "moving.csv"), str(case / "fixed.csv"), "--pet", "mpc",
                    "-o", str(case / "local_"), "--quiet"])
    assert local.returncode == 0, local.stderr
    remote_report = json.loads((case / "remote_report.json").read_text())
    local_report = json.loads((case / "local_report.json").read_text())
    for key in ("matrix", "translation_mm", "center_mm"):
        assert np.allclose(remote_report["transform"][key], local_report["transform"][key], rtol=0, atol=1e-9)
    assert np.allclose(read_points(case / "remote_transformed.csv").points,
                       read_points(case / "local_transformed.csv").points, rtol=0, atol=1e-6)
    assert remote_report["inputs"]["fixed"]["path"].startswith("party2 at 127.0.0.1")
    total = remote_report["communication"]["total"]
    assert total["party1"] > 0 and total["party2"] > 0 and total["dealer"] > 0


def test_row_count_mismatch_with_a_remote_party2_exits_2(case, point_servers):
    result = party1(["pointcloud", str(case / "short.csv"), *point_servers, "--pet", "mpc", "-o", str(case / "x_")])
    assert result.returncode == 2
    assert result.stderr.startswith("ppreg: error:") and "must correspond" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(case.glob("x_*"))


def test_an_image_registration_against_a_point_server_is_refused(case, point_servers):
    result = party1(["affine", str(DATA / "r64.png"), *point_servers, "--pet", "mpc", "-o", str(case / "y_"),
                     "--quiet"])
    assert result.returncode == 3 and "party2 serves a point set" in result.stderr
    assert not list(case.glob("y_*"))
