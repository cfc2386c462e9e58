"""`ppreg serve` and `ppreg dealer` serve registration after registration without a restart
and without leaking: resident memory and open file descriptors of both server processes,
read from /proc after session 5 and after session 20, grow by less than 10 %."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ppreg.api import run_affine
from ppreg.config import AffineConfig
from ppreg.io.images import read_image
from ppreg.secure.runtime import remote_session
from ppreg.transport.keys import make_keys
from test_faults import DATA, PPREG, start_logged_server, stop

SESSIONS, WARM_UP = 20, 5
GROWTH_LIMIT = 0.10
CONFIG = AffineConfig(pet="mpc", levels="8x4", smoothing="2x1", iterations="5x5").validate()


def resources(pid: int) -> dict:
    """VmRSS (kB) and the number of open file descriptors of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return {"rss_kb": rss, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def wait_for_line(log: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"{text!r} never appeared in {log}"
        time.sleep(0.02)


@pytest.fixture()
def servers(tmp_path):
    certs = tmp_path / "certs"
    make_keys(certs)
    dealer, dealer_port = start_logged_server(
        PPREG + ["dealer", "--listen", "127.0.0.1:0", "--certs", str(certs)], tmp_path / "dealer.log")
    party2, party2_port = start_logged_server(
        PPREG + ["serve", str(DATA / "r16.png"), "--listen", "127.0.0.1:0", "--certs", str(certs),
                 "--dealer", f"127.0.0.1:{dealer_port}"], tmp_path / "party2.log")
    yield {"certs": certs, "party2": party2, "dealer": dealer, "peer": f"127.0.0.1:{party2_port}",
           "dealer_address": f"127.0.0.1:{dealer_port}", "logs": {"party2": tmp_path / "party2.log",
                                                                   "dealer": tmp_path / "dealer.log"}}
    stop(party2, dealer)


def test_twenty_registrations_in_a_row_without_growth(servers):
    moving = read_image(DATA / "r64.png")
    processes = {"party2": servers["party2"], "dealer": servers["dealer"]}
    measured = {}
    for number in range(1, SESSIONS + 1):
        with remote_session(servers["peer"], servers["dealer_address"], servers["certs"], "mpc") as proxy:
            outcome = run_affine(moving, proxy, CONFIG)
        assert outcome.result.metric_final < outcome.result.metric_initial
        for name, log in servers["logs"].items():
            wait_for_line(log, f'"session": {number},')
        if number in (WARM_UP, SESSIONS):
            measured[number] = {name: resources(process.pid) for name, process in processes.items()}
    print(f"\nafter session {WARM_UP} and {SESSIONS}: {measured}")  # shown with pytest -s
    for name, process in processes.items():
        assert process.poll() is None, f"{name} stopped"
        before, after = measured[WARM_UP][name], measured[SESSIONS][name]
        for key in ("rss_kb", "fds"):
            growth = (after[key] - before[key]) / before[key]
            assert growth < GROWTH_LIMIT, f"{name} {key}: {before[key]} after session {WARM_UP}, {after[key]} after {SESSIONS}"
