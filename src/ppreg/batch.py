"""``ppreg batch``: one registration per manifest row, each in its own process.

A pair that fails (bad file, crash, timeout) is recorded and the others go on. A pair
whose report already exists is skipped, so an interrupted batch resumes where it
stopped: outputs are all-or-nothing, so a report means the pair finished.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ppreg.errors import InputError
from ppreg.io.images import write_atomically

REQUIRED_COLUMNS = ("moving", "fixed")
OPTIONAL_COLUMNS = ("id", "reference", "mask")
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ERROR_PREFIX = "ppreg: error: "
OK, FAILED, SKIPPED = "ok", "failed", "skipped"
SUMMARY_COLUMNS = (
    "id", "status", "exit_code", "error", "moving", "fixed", "metric_initial", "metric_final", "iterations",
    "wall_seconds", "registration_seconds", "bytes_per_iteration_party1", "bytes_per_iteration_party2",
    "bytes_per_iteration_dealer", "rmse_mm", "max_mm", "report",
)


@dataclass(frozen=True)
class Pair:
    """One manifest row; paths are resolved against the manifest's folder."""

    id: str
    moving: Path
    fixed: Path
    reference: Path | None = None
    mask: Path | None = None

    def prefix(self, outdir: Path) -> str:
        return str(outdir / f"{self.id}_")

    def report_path(self, outdir: Path) -> Path:
        return outdir / f"{self.id}_report.json"

    def log_path(self, outdir: Path) -> Path:
        return outdir / f"{self.id}_stderr.log"


@dataclass(frozen=True)
class PairResult:
    """How one pair ended; ``report`` is its JSON report when it has one."""

    pair: Pair
    status: str
    exit_code: int | None = None
    error: str = ""
    wall_seconds: float | None = None
    report: dict | None = None


def read_manifest(path: str | Path) -> list[Pair]:
    """The pairs of a manifest CSV (header required: moving,fixed[,id][,reference][,mask]).

    Without an ``id`` column a pair is named after its moving file. Raises InputError
    for a missing/unreadable file, missing or unknown columns, empty cells, bad or
    duplicate ids, or no rows: the batch does not start.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read manifest {path}: {error}") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [name.strip().lower() for name in reader.fieldnames or []]
    _check_columns(path, columns)
    reader.fieldnames = columns
    pairs = [_pair(path, reader.line_num, row) for row in reader if any(_cells(row))]
    if not pairs:
        raise InputError(f"{path}: no pairs below the header")
    seen: set[str] = set()
    for pair in pairs:
        if pair.id in seen:
            raise InputError(f"{path}: id {pair.id!r} appears twice"
                             + ("" if "id" in columns else " (moving files share a name: add an id column)"))
        seen.add(pair.id)
    return pairs


def _cells(row: dict) -> list[str]:
    return [value for key, value in row.items() if key is not None and value and value.strip()]


def _check_columns(path: Path, columns: list[str]) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise InputError(f"{path}: the header must name the columns moving,fixed (missing: {', '.join(missing)})")
    unknown = [name for name in columns if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise InputError(f"{path}: unknown column {unknown[0]!r} "
                         f"(known: {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)})")


def _pair(manifest: Path, line: int, row: dict) -> Pair:
    if row.get(None):
        raise InputError(f"{manifest}:{line}: more cells than header columns")
    values = {key: (value or "").strip() for key, value in row.items()}
    for name in REQUIRED_COLUMNS:
        if not values.get(name):
            raise InputError(f"{manifest}:{line}: empty {name} cell")
    moving = _resolve(manifest, values["moving"])
    pair_id = values.get("id") or _stem(moving)
    if not ID_PATTERN.fullmatch(pair_id):
        raise InputError(f"{manifest}:{line}: id {pair_id!r} must be letters, digits, '.', '_' or '-'")
    optional = {name: _resolve(manifest, values[name]) if values.get(name) else None for name in ("reference", "mask")}
    return Pair(pair_id, moving, _resolve(manifest, values["fixed"]), **optional)


def _resolve(manifest: Path, cell: str) -> Path:
    path = Path(cell).expanduser()
    return path if path.is_absolute() else manifest.parent / path


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".png", ".csv"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def pair_command(pair: Pair, model: str, outdir: Path, options: Sequence[str]) -> list[str]:
    """The ``ppreg MODEL`` command line that registers ``pair``."""
    command = [sys.executable, "-m", "ppreg.cli", model, str(pair.moving), str(pair.fixed),
               "-o", pair.prefix(outdir), "--quiet", *options]
    if pair.reference is not None:
        command += ["--reference-transform", str(pair.reference)]
    if pair.mask is not None:
        command += ["--mask", str(pair.mask)]
    return command


def finished_report(pair: Pair, outdir: Path) -> dict | None:
    """The pair's report if a previous run finished it (None if absent or unreadable)."""
    try:
        return json.loads(pair.report_path(outdir).read_text())
    except (OSError, ValueError):
        return None


def run_pair(pair: Pair, model: str, outdir: Path, options: Sequence[str], timeout: float | None = None) -> PairResult:
    """Register one pair in a child process; never raises for the pair's own failure."""
    started = time.perf_counter()
    try:
        process = subprocess.run(pair_command(pair, model, outdir, options), capture_output=True, text=True,
                                 timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr.decode(errors="replace") if isinstance(expired.stderr, bytes) else expired.stderr or ""
        return _failed(pair, outdir, None, f"timed out after {timeout:g} s", stderr, started)
    if process.returncode != 0:
        return _failed(pair, outdir, process.returncode, error_message(process.returncode, process.stderr),
                       process.stderr, started)
    pair.log_path(outdir).unlink(missing_ok=True)
    return PairResult(pair, OK, 0, "", time.perf_counter() - started, finished_report(pair, outdir))


def _failed(pair: Pair, outdir: Path, code: int | None, message: str, stderr: str, started: float) -> PairResult:
    if stderr:
        write_atomically(pair.log_path(outdir), lambda tmp: tmp.write_text(stderr), suffix=".log")
    return PairResult(pair, FAILED, code, message, time.perf_counter() - started)


def error_message(code: int, stderr: str) -> str:
    """The one-line reason of a failed child: its ``ppreg: error:`` line if any."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX):]
    if code < 0:
        return f"killed by signal {-code}"
    return lines[-1] if lines else f"exit code {code}"


def run_batch(
    pairs: Sequence[Pair], model: str, outdir: str | Path, options: Sequence[str] = (), jobs: int = 1,
    timeout: float | None = None, on_result: Callable[[PairResult], None] | None = None,
) -> list[PairResult]:
    """Register every pair not finished yet, ``jobs`` at a time; rewrite
    ``OUTDIR/summary.csv`` after each pair. Returns the results in manifest order."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results: dict[int, PairResult] = {}

    def record(index: int, result: PairResult) -> None:
        results[index] = result
        write_summary([results[i] for i in sorted(results)], outdir / "summary.csv")
        if on_result is not None:
            on_result(result)

    todo = []
    for index, pair in enumerate(pairs):
        report = finished_report(pair, outdir)
        if report is not None:
            record(index, PairResult(pair, SKIPPED, report=report))
        else:
            todo.append(index)
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        futures = {pool.submit(run_pair, pairs[i], model, outdir, options, timeout): i for i in todo}
        try:
            for future in as_completed(futures):
                record(futures[future], future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [results[i] for i in sorted(results)]


def summary_row(result: PairResult, outdir: Path) -> dict:
    """One row of summary.csv (empty cells where the report has nothing)."""
    report = result.report or {}
    similarity = report.get("similarity") or {}
    per_iteration = (report.get("communication") or {}).get("per_iteration_mean") or {}
    accuracy = report.get("accuracy") or {}
    wall = result.wall_seconds
    return {
        "id": result.pair.id,
        "status": result.status,
        "exit_code": "" if result.exit_code is None else result.exit_code,
        "error": result.error,
        "moving": result.pair.moving,
        "fixed": result.pair.fixed,
        "metric_initial": similarity.get("initial", ""),
        "metric_final": similarity.get("final", ""),
        "iterations": report.get("iterations_total", ""),
        "wall_seconds": "" if wall is None else f"{wall:.3f}",
        "registration_seconds": (report.get("time") or {}).get("wall_seconds", ""),
        "bytes_per_iteration_party1": per_iteration.get("party1", ""),
        "bytes_per_iteration_party2": per_iteration.get("party2", ""),
        "bytes_per_iteration_dealer": per_iteration.get("dealer", ""),
        "rmse_mm": accuracy.get("rmse_mm", ""),
        "max_mm": accuracy.get("max_mm", ""),
        "report": "" if result.report is None else result.pair.report_path(outdir),
    }


def write_summary(results: Sequence[PairResult], path: Path) -> Path:
    """Write summary.csv atomically (columns SUMMARY_COLUMNS, one row per pair)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary_row(result, path.parent) for result in results)
    write_atomically(path, lambda tmp: tmp.write_text(buffer.getvalue()), suffix=".csv")
    return path
