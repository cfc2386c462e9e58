"""Faults with real processes on 127.0.0.1: a peer or the dealer killed mid-run.

party2 (``ppreg serve``) or the dealer runs under tests/faultinject.py, which SIGKILLs it
at a chosen protocol message. The kill points are drawn (seeded) from the messages of a
reference run, two in level set-up and three in iterations for each of the two
processes: 10 kills in all. party1, the survivor, must exit 3 with one ``ppreg: error:``
line within 30 s of the kill and leave no output file.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ppreg.transport.keys import make_keys
from test_three_process import stop

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
INJECT = [sys.executable, str(ROOT / "tests" / "faultinject.py")]
PPREG = [sys.executable, "-m", "ppreg.cli"]
SURVIVOR_SECONDS = 30
KILLS_PER_PROCESS = {"setup": 2, "iterations": 3}
SEED = 10
REGISTRATION = ["--pet", "mpc", "--levels", "8x4", "--smoothing", "2x1", "--iterations", "10x10",
                "--convergence", "1e-12", "--quiet"]


def start_server(command: list[str], timeout: float = 60) -> tuple[subprocess.Popen, int]:
    """Start a server process and wait (bounded) for its 'port N' line on stderr."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if "port " in line:
            return process, int(line.rsplit("port ", 1)[1].split()[0])
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"server did not start: {process.stderr.read()}")


class Deployment:
    """A dealer and a party2, either of which may be set to die at a message."""

    def __init__(self, certs: Path, logs: Path, kill: dict[str, int]):
        self.logs = logs
        dealer_args = ["dealer", "--listen", "127.0.0.1:0", "--certs", str(certs)]
        self.dealer, self.dealer_port = start_server(self._command("dealer", kill.get("dealer", 0), dealer_args))
        party2_args = ["serve", str(DATA / "r16.png"), "--listen", "127.0.0.1:0", "--certs", str(certs),
                       "--dealer", f"127.0.0.1:{self.dealer_port}"]
        self.party2, self.party2_port = start_server(self._command("party2", kill.get("party2", 0), party2_args))
        self.processes = {"dealer": self.dealer, "party2": self.party2}

    def _command(self, name: str, kill_at: int, args: list[str]) -> list[str]:
        return [*INJECT, str(kill_at), str(self.logs / f"{name}.log"), "--", *args]

    def party1_args(self, certs: Path, prefix: Path) -> list[str]:
        return ["affine", str(DATA / "r64.png"), "--peer", f"127.0.0.1:{self.party2_port}",
                "--dealer", f"127.0.0.1:{self.dealer_port}", "--certs", str(certs), "-o", str(prefix), *REGISTRATION]

    def stop(self) -> None:
        stop(self.party2, self.dealer)


def read_events(log: Path) -> list[tuple[int, str, str]]:
    """(index, phase, what) per message of a reference log."""
    events = []
    for line in log.read_text().splitlines():
        index, phase, *what = line.split()
        events.append((int(index), phase, " ".join(what)))
    return events


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("certs")
    make_keys(directory)
    return directory


@pytest.fixture(scope="module")
def kill_points(certs, tmp_path_factory):
    """A complete reference run, then the seeded kill points per process."""
    logs = tmp_path_factory.mktemp("reference")
    deployment = Deployment(certs, logs, {})
    try:
        result = subprocess.run(PPREG + deployment.party1_args(certs, logs / "ok_"), capture_output=True, text=True,
                                timeout=120)
    finally:
        deployment.stop()
    assert result.returncode == 0, result.stderr
    rng = np.random.default_rng(SEED)
    points = {}
    for name in ("party2", "dealer"):
        events = read_events(logs / f"{name}.log")
        chosen = []
        for phase, count in KILLS_PER_PROCESS.items():
            # The last messages (bye) are left out: a kill after them is not mid-run.
            candidates = [index for index, event_phase, what in events[:-2] if event_phase == phase]
            chosen += sorted(rng.choice(candidates, size=count, replace=False).tolist())
        points[name] = [(index, events[index - 1][1], events[index - 1][2]) for index in chosen]
    return points


def run_and_kill(certs: Path, workdir: Path, target: str, kill_at: int) -> dict:
    workdir.mkdir(parents=True)
    deployment = Deployment(certs, workdir, {target: kill_at})
    prefix = workdir / "out" / "run_"
    party1 = subprocess.Popen(PPREG + deployment.party1_args(certs, prefix), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        victim = deployment.processes[target]
        try:
            victim.wait(timeout=60)
        except subprocess.TimeoutExpired:
            party1.kill()
            raise AssertionError(f"{target} never reached message {kill_at}; party1: {party1.communicate()[1]}")
        killed_at = time.monotonic()
        _, stderr = party1.communicate(timeout=SURVIVOR_SECONDS + 5)
        survivor_seconds = time.monotonic() - killed_at
        other = "dealer" if target == "party2" else "party2"
        return {"victim_code": victim.returncode, "party1_code": party1.returncode, "stderr": stderr,
                "seconds": survivor_seconds, "other_alive": deployment.processes[other].poll() is None,
                "outputs": sorted(p.name for p in prefix.parent.glob("*")) if prefix.parent.exists() else [],
                "log": (workdir / f"{target}.log").read_text()}
    finally:
        stop(party1)
        deployment.stop()


@pytest.mark.parametrize("target", ["party2", "dealer"])
def test_survivor_exits_3_quickly_without_outputs(certs, kill_points, tmp_path, target):
    points = kill_points[target]
    assert {phase for _, phase, _ in points} == {"setup", "iterations"}
    for number, (kill_at, phase, what) in enumerate(points):
        outcome = run_and_kill(certs, tmp_path / f"kill{number}", target, kill_at)
        where = f"{target} killed at message {kill_at} ({phase}: {what})"
        assert outcome["victim_code"] == -9, where  # it really died there, by SIGKILL
        assert outcome["log"].startswith(f"{kill_at} "), where
        assert outcome["party1_code"] == 3, f"{where}: {outcome['stderr']}"
        lines = [line for line in outcome["stderr"].splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("ppreg: error:"), f"{where}: {outcome['stderr']}"
        assert "party2" in lines[0] or "dealer" in lines[0], f"{where}: {lines[0]}"
        assert "Traceback" not in outcome["stderr"]
        assert outcome["seconds"] < SURVIVOR_SECONDS, f"{where}: party1 took {outcome['seconds']:.1f} s"
        assert outcome["outputs"] == [], f"{where}: partial outputs {outcome['outputs']}"
        assert outcome["other_alive"], f"{where}: the other server died too"
