"""Run benchmark modules, store their results as JSON, regenerate RESULTS.md."""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy
import SimpleITK as sitk

import ppreg
from benchmarks.results_md import render_results

PACKAGE_DIR = Path(__file__).resolve().parent
RESULTS_DIR = PACKAGE_DIR / "results"
RESULTS_MD = PACKAGE_DIR / "RESULTS.md"


def results_md_path(results_dir: Path | None) -> Path:
    """Where RESULTS.md goes: beside the default results folder, or inside a chosen one."""
    return RESULTS_MD if results_dir is None else results_dir / "RESULTS.md"


def run_benchmarks(names: tuple[str, ...], quick: bool, command: str, results_dir: Path | None = None):
    """Run each named benchmark; yields (name, results path, seconds) as each finishes.

    ``results_dir`` (default ``benchmarks/results``) receives NAME.json and any figure a
    benchmark draws (its module's ``write_figures(result, directory)``, if it has one).
    RESULTS.md is regenerated after every benchmark, so an interrupted run still leaves
    a consistent file.
    """
    directory = RESULTS_DIR if results_dir is None else results_dir
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        load_before, started = os.getloadavg(), time.perf_counter()
        result = module.run(quick)
        seconds = time.perf_counter() - started
        result.update(
            benchmark=name, quick=quick, command=command, date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            duration_seconds=round(seconds, 1), machine=machine_info(),
            load_average={"before": list(load_before), "after": list(os.getloadavg())},
        )
        if hasattr(module, "write_figures"):
            result["figures"] = module.write_figures(result, directory)
        path = directory / f"{name}.json"
        write_text_atomically(path, json.dumps(result, indent=1, default=_json_default) + "\n")
        render(results_dir)
        yield name, path, seconds


def render(results_dir: Path | None = None, redraw: bool = False) -> Path:
    """Regenerate RESULTS.md from the results JSON present (no benchmark runs); returns its path.

    ``redraw``: also redraw every benchmark's figures from its JSON (``write_figures``).
    """
    directory = RESULTS_DIR if results_dir is None else results_dir
    target = results_md_path(results_dir)
    if redraw:
        for result in load_results(directory):
            module = importlib.import_module(f"benchmarks.{result['benchmark']}")
            if hasattr(module, "write_figures"):
                module.write_figures(result, directory)
    figures_prefix = os.path.relpath(directory, target.parent)
    write_text_atomically(target, render_results(load_results(directory), figures_prefix))
    return target


def load_results(directory: Path = RESULTS_DIR) -> list[dict]:
    """Every results JSON in ``directory``, in file-name order."""
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]


def machine_info() -> dict:
    """Where the figures were measured: core count, CPU model, library versions."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "simpleitk": sitk.Version_VersionString(),
        "ppreg": ppreg.__version__,
        **_ppreg_source(),
        "blas_threads_env": {key: os.environ.get(key) for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ppreg_source() -> dict:
    """Where the measured ppreg came from: its source folder, commit and uncommitted edits."""
    source = Path(ppreg.__file__).resolve().parent
    commit = _git(source, "rev-parse", "--short", "HEAD")
    changes = _git(source, "status", "--porcelain", "--", ".")
    commit = None if commit is None else commit.strip()
    return {
        "ppreg_source": str(source),
        "git_commit": commit,
        "ppreg_uncommitted_changes": None if changes is None else [line[3:] for line in changes.splitlines()],
    }


def _git(folder: Path, *arguments: str) -> str | None:
    try:
        completed = subprocess.run(["git", *arguments], cwd=folder, capture_output=True, text=True, timeout=10,
                                   check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout


def write_text_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
