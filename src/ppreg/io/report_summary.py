"""Reading JSON reports back and condensing them to the few numbers people compare."""

from __future__ import annotations

import json
from pathlib import Path

from ppreg.errors import InputError

MISSING = "-"
PARTIES = ("party1", "party2", "dealer")


def load_report(path: str | Path) -> dict:
    """A ppreg report as a dict; InputError if missing, not JSON or not a ppreg report."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"report not found: {path}")
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read report {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path} is not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(report, dict) or "schema" not in report or "model" not in report:
        raise InputError(f"{path} is not a ppreg report (no schema/model keys)")
    return report


def human_bytes(count) -> str:
    """1234567 → '1.23 MB' (decimal units, as network traffic is counted)."""
    if not isinstance(count, (int, float)):
        return MISSING
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(count) >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count:.0f} B"


def _number(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else MISSING


def summary_fields(report: dict) -> dict[str, str]:
    """The columns of ``ppreg report`` for one report, as display strings ('-' if absent)."""
    config = report.get("config") or {}
    transform = (report.get("transform") or {}).get("kind")
    similarity = report.get("similarity") or {}
    timing = report.get("time") or {}
    per_iteration = (report.get("communication") or {}).get("per_iteration_mean") or {}
    sampling = config.get("sampling", MISSING)
    if sampling in ("urs", "gms") and isinstance(config.get("sampling_fraction"), (int, float)):
        sampling = f"{sampling} {config['sampling_fraction']:.0%}"
    model = report.get("model", MISSING)
    return {
        "model": f"{model} ({transform})" if transform and transform != model else str(model),
        "pet": str(config.get("pet", MISSING)),
        "metric": str(config.get("metric", MISSING)),
        "sampling": str(sampling),
        "iterations": _number(report.get("iterations_total"), "d"),
        "initial cost": _number(similarity.get("initial"), ".4g"),
        "final cost": _number(similarity.get("final"), ".4g"),
        "RMSE mm": _number((report.get("accuracy") or {}).get("rmse_mm"), ".3f"),
        "s/iteration": _number(timing.get("per_iteration_mean_seconds"), ".3g"),
        **{f"{party}/iteration": human_bytes(per_iteration.get(party)) for party in PARTIES},
    }
