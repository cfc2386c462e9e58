"""Running ppreg's affine registration in process and summarising what it recorded."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from benchmarks.cases import KnownCase, Schedule
from ppreg.api import AffineOutcome, run_affine, transform_difference
from ppreg.config import AffineConfig, load_config
from ppreg.secure.runtime import in_process_session

PARTIES = ("party1", "party2", "dealer")


@dataclass
class PpregRun:
    """One finished registration: the outcome, its wall time and accuracy vs the truth."""

    outcome: AffineOutcome
    wall_seconds: float
    transform: sitk.Transform
    accuracy: dict


def run_ppreg(case: KnownCase, schedule: Schedule, pet: str = "clear", metric: str = "ssd",
              sampling: str = "all", fraction: float = 0.1, seed: int = 0) -> PpregRun:
    """Register ``case.moving`` to ``case.fixed`` with party2 (and dealer) in threads.

    The wall time covers the whole session: starting the party threads, every level's
    setup and iteration, and the goodbye.
    """
    config = load_config(AffineConfig, None, {
        "pet": pet, "metric": metric, "sampling": sampling, "sampling_fraction": fraction, "seed": seed,
        **schedule.as_dict(),
    })
    started = time.perf_counter()
    with in_process_session(case.fixed, pet) as proxy:
        outcome = run_affine(case.moving, proxy, config)
    wall = time.perf_counter() - started
    transform = outcome.sitk_transform()
    return PpregRun(outcome, wall, transform, transform_difference(transform, case.truth, case.fixed.grid, case.mask))


def level_summaries(outcome: AffineOutcome) -> list[dict]:
    """Per level: samples, iterations, mean seconds and bytes per iteration per party, setup bytes."""
    summaries = []
    for level in outcome.result.levels:
        records = level.iterations
        summaries.append({
            "shrink": level.shrink,
            "samples": level.n_samples,
            "iterations": len(records),
            "seconds_per_iteration": statistics.fmean(r.seconds for r in records) if records else None,
            "bytes_per_iteration": {party: statistics.fmean(getattr(r.traffic, party) for r in records)
                                    for party in PARTIES} if records else None,
            "rounds_per_iteration": statistics.fmean(r.traffic.rounds for r in records) if records else None,
            "setup_seconds": level.setup_seconds,
            "setup_bytes": {party: getattr(level.setup_traffic, party) for party in PARTIES},
        })
    return summaries


def run_summary(run: PpregRun) -> dict:
    """JSON-able summary of a run (wall time, accuracy, levels, totals)."""
    outcome = run.outcome
    records = [r for level in outcome.result.levels for r in level.iterations]
    iteration_bytes = {party: sum(getattr(r.traffic, party) for r in records) for party in PARTIES}
    total = outcome.total_traffic
    return {
        "wall_seconds": run.wall_seconds,
        "iterations": len(records),
        "seconds_per_iteration": statistics.fmean(r.seconds for r in records) if records else None,
        "accuracy_vs_truth": run.accuracy,
        "levels": level_summaries(outcome),
        "total_bytes": {party: getattr(total, party) for party in PARTIES},
        "setup_bytes": {party: getattr(total, party) - iteration_bytes[party] for party in PARTIES},
        "transform": {"matrix": np.asarray(run.transform.GetMatrix()).tolist(),
                      "translation": list(run.transform.GetTranslation()),
                      "center": list(run.transform.GetCenter())},
    }


def median_index(values: list[float]) -> int:
    """Index of the median element (the lower one for an even count)."""
    order = np.argsort(values)
    return int(order[(len(values) - 1) // 2])
