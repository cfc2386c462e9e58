"""Peak memory per party: representative secure runs as three real processes on 127.0.0.1.

Each run starts ``ppreg dealer`` and ``ppreg serve FIXED`` (both ``--sessions 1``) and then
party1 (``ppreg affine|pointcloud MOVING --peer ... --dealer ...``), all over mutual TLS
with certificates from ``ppreg keys``, exactly as docs/cli.md describes. Every process is
reaped with ``os.wait4``, whose resource usage gives that process's own peak resident set
(``ru_maxrss``, KiB on Linux): measured, not estimated. party1's report adds its time and
bytes per iteration. A process that only imports numpy, SciPy, SimpleITK, TenSEAL and
ppreg gives the floor every party pays for the interpreter and its libraries.

Linux keeps the peak across fork and exec: a process forked from this (large) benchmark
process would report the benchmark's peak. So each party is forked by a tiny launcher
(:data:`LAUNCHER`, ``python -S``, a few MB), which reaps it with ``os.wait4`` and writes its
``ru_maxrss`` to a file; the launcher itself is reaped here with ``os.wait4`` too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.cases import DATA_DIR, mni_3d, r16_2d
from benchmarks.paper import POINTCLOUD_POINTS
from ppreg.io.images import read_image, write_image
from ppreg.io.points import write_points
from ppreg.synthetic import known_affine
from ppreg.synthetic_points import move_points, surface_landmarks

TITLE = "Peak memory per party: three real processes on 127.0.0.1 (issue 9)"
PPREG = [sys.executable, "-m", "ppreg.cli"]
KIB_PER_MB = 1e6 / 1024
START_TIMEOUT, RUN_TIMEOUT = 120, 900
PARTIES = ("party1", "party2", "dealer")
FLOOR_IMPORTS = "import numpy, scipy, SimpleITK, tenseal, ppreg.api, ppreg.cli.app"
"""What every party process imports before it does any work: its peak is the floor."""
LAUNCHER = """
import os, sys
peak_file, command = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.execv(command[0], command)
_, status, usage = os.wait4(pid, 0)
with open(peak_file, "w") as handle:
    handle.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""
"""Forks and execs ``command``, reaps it with os.wait4 and writes its ru_maxrss (KiB) to ``peak_file``."""


@dataclass(frozen=True)
class MemoryRun:
    """One three-process registration.

    ``paper_key`` is the (model, metric, sampling, engine) of the paper row it stands
    beside in the comparison table, or None when the paper has no such row.
    """

    name: str
    case: str
    model: str
    options: tuple[str, ...]
    paper_key: tuple[str, str, str, str] | None

    @property
    def uses_dealer(self) -> bool:
        return "mpc" in self.options


SCHEDULE_2D = ("--levels", "4x2x1", "--smoothing", "2x1x0", "--iterations", "100x50x25")
QUICK_SCHEDULE_2D = ("--levels", "4x2x1", "--smoothing", "2x1x0", "--iterations", "10x5x3")
SCHEDULE_3D = ("--levels", "4x2x1", "--smoothing", "2x1x0", "--iterations", "30x15x8")
# The paper's MI schedule: r10, r5 with σ 3, 1 and 10 % of the voxels (about 10³ and 10⁴ samples here;
# quick: the 4 mm image, so shrink factors and sigmas halve and the sample counts stay).
MI_OPTIONS = ("--metric", "mi", "--sampling", "urs", "--sampling-fraction", "0.1")
SCHEDULE_MI = ("--levels", "4x2", "--smoothing", "3x1", "--iterations", "15x8", *MI_OPTIONS)
QUICK_SCHEDULE_MI = ("--levels", "2x1", "--smoothing", "1.5x0.5", "--iterations", "3x2", *MI_OPTIONS)


def runs(quick: bool) -> list[MemoryRun]:
    """The rows: mpc affine SSD 2D and 3D (full only), fhe2 affine SSD 2D (GMS), mpc pointcloud, mpc MI 3D."""
    schedule_2d = QUICK_SCHEDULE_2D if quick else SCHEDULE_2D
    rows = [
        MemoryRun("mpc affine SSD 2D", "r16 256², known affine, all pixels", "affine",
                  ("--pet", "mpc", *schedule_2d), ("affine", "SSD", "all", "mpc")),
        MemoryRun("fhe2 affine SSD 2D GMS", "r16 256², known affine, GMS 10 %", "affine",
                  ("--pet", "fhe2", "--sampling", "gms", "--sampling-fraction", "0.1", *schedule_2d),
                  ("affine", "SSD", "GMS", "fhe2")),
        MemoryRun("mpc pointcloud", f"{POINTCLOUD_POINTS} 3D landmarks", "pointcloud", ("--pet", "mpc"),
                  ("pointcloud", "SSD", "all", "mpc")),
        MemoryRun("mpc affine MI 3D", f"MNI T1 {'4 mm, levels 2x1' if quick else '2 mm, levels 4x2'}, known affine, "
                  "MI, URS 10 %", "affine", ("--pet", "mpc", *(QUICK_SCHEDULE_MI if quick else SCHEDULE_MI)),
                  ("affine", "MI", "URS", "mpc")),
    ]
    if not quick:
        rows.insert(1, MemoryRun("mpc affine SSD 3D", "MNI T1 2 mm 81×98×82, known affine, all voxels", "affine",
                                 ("--pet", "mpc", *SCHEDULE_3D), None))
    return rows


def run(quick: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="ppreg-memory-") as folder:
        work = Path(folder)
        inputs = _write_inputs(work, quick)
        subprocess.run([*PPREG, "keys", str(work / "certs")], check=True, capture_output=True, timeout=START_TIMEOUT)
        floor_mb = _peak_of([sys.executable, "-c", FLOOR_IMPORTS], work)
        measured = [_measure(row, inputs, work) for row in runs(quick)]
    return {"title": TITLE, "issue": 9, "floor_mb": floor_mb, "runs": measured,
            "summary": _summary(measured, floor_mb), "tables": [_table(measured, floor_mb)]}


def _write_inputs(work: Path, quick: bool) -> dict:
    """Moving/fixed files per case: image pairs with a known affine, point sets with a known rigid motion."""
    r16 = r16_2d(quick)
    write_image(r16.moving, work / "r16_moving.nii.gz")
    mni = mni_3d(quick)
    write_image(mni.moving, work / "mni_moving.nii.gz")
    write_image(mni.fixed, work / "mni_fixed.nii.gz")
    inputs = {"affine 2D": (work / "r16_moving.nii.gz", DATA_DIR / "r16.png"),
              "affine 3D": (work / "mni_moving.nii.gz", work / "mni_fixed.nii.gz")}
    rng = np.random.default_rng(8)
    fixed = surface_landmarks(read_image(DATA_DIR / "mni_mask_2mm.nii.gz"), POINTCLOUD_POINTS, rng)
    matrix, translation, center = known_affine(3, 12.0, (6.0, -4.0, 9.0), 0.0, fixed.mean(axis=0))
    write_points(fixed, work / "fixed.csv")
    write_points(move_points(fixed, matrix, translation, center, 1.0, rng), work / "moving.csv")
    inputs["pointcloud"] = (work / "moving.csv", work / "fixed.csv")
    return inputs


def _inputs_for(row: MemoryRun, inputs: dict) -> tuple[Path, Path]:
    if row.model == "pointcloud":
        return inputs["pointcloud"]
    return inputs["affine 3D"] if "3D" in row.name else inputs["affine 2D"]


def _measure(row: MemoryRun, inputs: dict, work: Path) -> dict:
    moving, fixed = _inputs_for(row, inputs)
    certs = str(work / "certs")
    logs = work / row.name.replace(" ", "_")
    logs.mkdir()
    processes, dealer_option = {}, []
    try:
        if row.uses_dealer:  # the CKKS engines have no dealer: a dealer started for them would wait forever
            dealer_port = _free_port()  # chosen here so that party2 can start beside the dealer, not after it
            processes["dealer"] = _launch([*PPREG, "dealer", "--listen", f"127.0.0.1:{dealer_port}", "--certs", certs,
                                           "--sessions", "1"], logs / "dealer.err")
            dealer_option = ["--dealer", f"127.0.0.1:{dealer_port}"]
        processes["party2"] = _launch([*PPREG, "serve", str(fixed), "--listen", "127.0.0.1:0", "--certs", certs,
                                       *dealer_option, "--sessions", "1"], logs / "party2.err")
        ports = {party: _listening_port(process, logs / f"{party}.err") for party, process in processes.items()}
        started = time.perf_counter()
        processes["party1"] = _launch(
            [*PPREG, row.model, str(moving), "--peer", f"127.0.0.1:{ports['party2']}", *dealer_option,
             "--certs", certs, "-o", str(logs / "out_"), "--quiet", *row.options], logs / "party1.err")
        peaks = dict.fromkeys(PARTIES)
        for party in ("party1", "party2", "dealer"):
            if party not in processes:
                continue
            peaks[party], status = _reap(processes.pop(party), RUN_TIMEOUT)
            if status != 0:
                raise RuntimeError(f"{row.name}: {party} exited {status}: "
                                   f"{(logs / f'{party}.err').read_text()[-2000:]}")
        wall = time.perf_counter() - started
    finally:
        for process in processes.values():  # left over only when something failed
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    report = json.loads((logs / "out_report.json").read_text())
    return {"name": row.name, "case": row.case, "model": row.model, "options": list(row.options),
            "paper_key": list(row.paper_key) if row.paper_key else None, "peak_mb": peaks,
            "party1_wall_seconds": wall, **_report_figures(report)}


def _report_figures(report: dict) -> dict:
    """Iterations, party1's seconds per iteration and MB per iteration per party, from party1's report."""
    per_iteration = report["communication"].get("per_iteration_mean")
    seconds = report["time"].get("per_iteration_mean_seconds", report["time"].get("wall_seconds"))
    if per_iteration is None:  # pointcloud: one closed-form exchange, its total is "the iteration"
        per_iteration = {party: report["communication"]["total"][party] for party in PARTIES}
    return {"iterations": report.get("iterations_total"), "seconds_per_iteration": seconds,
            "mb_per_iteration": {party: per_iteration[party] / 1e6 for party in PARTIES}}


def _launch(command: list[str], stderr_path: Path) -> subprocess.Popen:
    """Start ``command`` under :data:`LAUNCHER` (own session); its peak goes to STDERR_PATH.peak."""
    with stderr_path.open("w") as stderr:
        return subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(stderr_path.with_suffix(".peak")),
                                 *command], stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening_port(process: subprocess.Popen, stderr_path: Path) -> int:
    """Wait (bounded) for the 'port N' a server prints on stderr once it listens."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        match = re.search(r"port (\d+)", stderr_path.read_text())
        if match:
            return int(match.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{stderr_path.stem} did not start: {stderr_path.read_text()[-2000:]}")


def _reap(process: subprocess.Popen, timeout: float) -> tuple[float, int]:
    """Wait for a launched process (os.wait4); the party's peak RSS in MB and its exit code."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, _ = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            break
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            _, status, _ = os.wait4(process.pid, 0)
            break
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    peak_file = Path(process.args[4])
    peak_kib = float(peak_file.read_text()) if peak_file.exists() else float("nan")
    return peak_kib / KIB_PER_MB, process.returncode


def _peak_of(command: list[str], work: Path) -> float:
    peak, _ = _reap(_launch(command, work / "floor.err"), START_TIMEOUT)
    return peak


def _table(measured: list[dict], floor_mb: float) -> dict:
    rows = [[run["name"], run["case"], run["peak_mb"]["party1"], run["peak_mb"]["party2"], run["peak_mb"]["dealer"],
             run["iterations"], run["seconds_per_iteration"], run["mb_per_iteration"]["party1"],
             run["mb_per_iteration"]["party2"], run["mb_per_iteration"]["dealer"], run["party1_wall_seconds"]]
            for run in measured]
    return {"title": "Peak resident memory per party process (ru_maxrss) and party1's report",
            "columns": ["run", "case", "peak MB party1", "peak MB party2", "peak MB dealer", "iterations",
                        "s/iter (party1)", "party1 MB/iter", "party2 MB/iter", "dealer MB/iter", "party1 wall s"],
            "rows": rows,
            "notes": [f"Floor: `python -c '{FLOOR_IMPORTS}'` peaks at {floor_mb:.0f} MB; every party pays it.",
                      "MB = 10⁶ bytes; peak from os.wait4's ru_maxrss (KiB) of each process, reaped one by one.",
                      "party1 wall s: from starting party1 until the three processes have exited (TLS handshakes, "
                      "process start-up and imports included).",
                      "Pointcloud: closed form, one exchange; its 'per iteration' figures are the whole run.",
                      "fhe engines run without a dealer process (peak dealer: –).",
                      "The paper reports no memory figures."]}


def _mb_text(value: float | None) -> str:
    return "no process" if value is None else f"{value:.0f}"


def _summary(measured: list[dict], floor_mb: float) -> list[str]:
    lines = [f"import floor {floor_mb:.0f} MB per process"]
    for run in measured:
        peak = run["peak_mb"]
        lines.append(f"{run['name']}: peak " + " / ".join(_mb_text(peak[party]) for party in PARTIES)
                     + " MB (party1 / party2 / dealer)")
    return lines
