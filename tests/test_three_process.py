"""Three real processes on 127.0.0.1: dealer, party2 (serve) and party1 (affine --peer)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ppreg.transport.keys import make_keys

DATA = Path(__file__).resolve().parents[1] / "data"
PPREG = [sys.executable, "-m", "ppreg.cli"]
START_TIMEOUT = 60


def start(args: list[str], pattern: str) -> tuple[subprocess.Popen, int]:
    """Start a ppreg server process and wait (bounded) for its 'port N' line on stderr."""
    process = subprocess.Popen(PPREG + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(pattern, line)
        if match:
            return process, int(match.group(1))
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"{args[0]} did not start: {process.stderr.read()}")


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


@pytest.fixture()
def certs(tmp_path):
    directory = tmp_path / "certs"
    make_keys(directory)
    return directory


@pytest.fixture()
def servers(certs):
    dealer, dealer_port = start(["dealer", "--listen", "127.0.0.1:0", "--certs", str(certs)], r"port (\d+)")
    party2, party2_port = start(
        ["serve", str(DATA / "r16.png"), "--listen", "127.0.0.1:0", "--certs", str(certs),
         "--dealer", f"127.0.0.1:{dealer_port}"], r"port (\d+)")
    yield {"dealer": dealer, "party2": party2, "dealer_port": dealer_port, "party2_port": party2_port}
    stop(party2, dealer)


def party1(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(PPREG + args, capture_output=True, text=True, timeout=timeout)


# 40 full-resolution levels: each re-opens the level with party2, so the run lasts many
# seconds whatever the optimiser does (a single level can converge before the kill).
LONG_SCHEDULE = ["--levels", "x".join(["1"] * 40), "--smoothing", "x".join(["0"] * 40),
                 "--iterations", "x".join(["30"] * 40), "--convergence", "1e-12"]
REGISTRATION = ["--pet", "mpc", "--levels", "4x2x1", "--smoothing", "2x1x0", "--iterations", "30x20x10",
                "--quiet"]


def test_three_processes_match_in_process(tmp_path, certs, servers):
    moving = str(DATA / "r64.png")
    remote = party1(["affine", moving, "--peer", f"127.0.0.1:{servers['party2_port']}",
                     "--dealer", f"127.0.0.1:{servers['dealer_port']}", "--certs", str(certs),
                     "-o", str(tmp_path / "remote_"), *REGISTRATION])
    assert remote.returncode == 0, remote.stderr
    local = party1(["affine", moving, str(DATA / "r16.png"), "-o", str(tmp_path / "local_"), *REGISTRATION])
    assert local.returncode == 0, local.stderr
    compared = party1(["compare", str(tmp_path / "remote_transform.tfm"), str(tmp_path / "local_transform.tfm"),
                       "--reference", str(DATA / "r16.png")])
    difference = json.loads(compared.stdout)
    assert difference["rmse_mm"] <= 0.01
    report = json.loads((tmp_path / "remote_report.json").read_text())
    per_iteration = report["communication"]["per_iteration_mean"]
    assert per_iteration["party1"] > 0 and per_iteration["party2"] > 0 and per_iteration["dealer"] > 0
    assert report["inputs"]["fixed"]["path"].startswith("party2 at 127.0.0.1")
    assert "r16" not in " ".join(report["command"])  # party1 never names the fixed image


def test_killing_party2_mid_run_exits_3_without_outputs(tmp_path, certs, servers):
    prefix = tmp_path / "out" / "killed_"
    process = subprocess.Popen(
        PPREG + ["affine", str(DATA / "r64.png"), "--peer", f"127.0.0.1:{servers['party2_port']}",
                 "--dealer", f"127.0.0.1:{servers['dealer_port']}", "--certs", str(certs), "-o", str(prefix),
                 "--pet", "mpc", *LONG_SCHEDULE, "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)  # party1 is iterating by now (the 2D level takes ms per iteration)
    assert process.poll() is None, process.stderr.read()
    os.kill(servers["party2"].pid, signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        _, stderr = process.communicate(timeout=30)
    finally:
        stop(process)
    assert time.monotonic() - killed_at < 30
    assert process.returncode == 3, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ppreg: error:") and "party2" in lines[0]
    assert not prefix.parent.exists() or not any(prefix.parent.iterdir())


def test_certificate_from_another_ca_is_refused(tmp_path, servers):
    foreign = tmp_path / "foreign"
    make_keys(foreign)
    result = party1(["affine", str(DATA / "r64.png"), "--peer", f"127.0.0.1:{servers['party2_port']}",
                     "--dealer", f"127.0.0.1:{servers['dealer_port']}", "--certs", str(foreign),
                     "-o", str(tmp_path / "x_"), *REGISTRATION])
    assert result.returncode == 3
    assert result.stderr.startswith("ppreg: error:") and "certificate" in result.stderr
    assert not list(tmp_path.glob("x_*"))


def test_party2_keeps_serving_after_a_refused_client(tmp_path, certs, servers):
    """A failed session (wrong CA) does not take party2 down: the next run succeeds."""
    foreign = tmp_path / "foreign"
    make_keys(foreign)
    party1(["affine", str(DATA / "r64.png"), "--peer", f"127.0.0.1:{servers['party2_port']}", "--pet", "clear",
            "--certs", str(foreign), "-o", str(tmp_path / "x_"), "--quiet"])
    result = party1(["affine", str(DATA / "r64.png"), "--peer", f"127.0.0.1:{servers['party2_port']}",
                     "--dealer", f"127.0.0.1:{servers['dealer_port']}", "--certs", str(certs),
                     "-o", str(tmp_path / "ok_"), *REGISTRATION])
    assert result.returncode == 0, result.stderr
