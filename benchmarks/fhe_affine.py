"""Issue 5: fhe1, fhe2 and mpc side by side on the same 2D affine SSD input.

Case: the ANTs r16 slice (256², 1 px) moved by the known affine transform of
``benchmarks.cases.r16_2d``. Two measurements:

1. The joint product alone at the finest level, at the paper's setting (URS, 10 % of
   the pixels: N = 6554) and with every pixel (N = 65 536): per product, each party's
   CPU time (its thread's clock, so waiting for the peer does not count; all parties run
   as threads of one process), bytes sent by each party, and, once per level, the key
   and context bytes (fhe: party2's public context, fhe1 also its Galois keys; mpc: the
   dealer's seeds) apart from the operand bytes. Products use party1's real features,
   the warped moving image at the identity.
2. Whole registrations with URS (the paper's case), clear as the reference: iterations,
   bytes per iteration per party (all levels), wall time, displacement RMSE to the
   clear transform and to the truth; and again with GMS for clear, fhe1 and fhe2 (the
   paper's "+ GMS" rows; mpc's GMS row is in mpc_affine).

Goals (issue 5): fhe2 ≥ 10× faster than fhe1 per product (both parties' CPU time
together); fhe2's bytes per iteration ≤ the paper's PPIR(FHE)-v2 with URS, 0.72 MB
(party1) / 0.88 MB (party2). MB = 10⁶ bytes.
"""

from __future__ import annotations

import statistics
import threading
import time

import numpy as np

from benchmarks.cases import FULL_SCHEDULE, QUICK_SCHEDULE_2D, KnownCase, r16_2d
from benchmarks.paper import paper_row
from benchmarks.ppreg_runs import run_ppreg
from ppreg.api import transform_difference
from ppreg.core.sampling import choose_samples
from ppreg.core.transforms import AffineModel
from ppreg.secure.runtime import in_process_session
from ppreg.secure.session import traffic_between
from ppreg.similarity.base import LevelRequest, normalize_intensity

TITLE = "fhe1, fhe2 and mpc on 2D affine SSD: time and bytes per party (issue 5)"
ENGINES = ("fhe1", "fhe2", "mpc")
GMS_ENGINES = ("fhe1", "fhe2")
FRACTION, SEED = 0.1, 0
_PAPER_FHE2_URS = paper_row("affine", "SSD", "URS", "fhe2")
PAPER_FHE2_URS_MB = {"party1": _PAPER_FHE2_URS.mb_party1, "party2": _PAPER_FHE2_URS.mb_party2}
GOAL_SPEEDUP = 10.0
FULL_PRODUCTS, QUICK_PRODUCTS = 5, 2


def run(quick: bool) -> dict:
    case = r16_2d(quick)
    repeats = QUICK_PRODUCTS if quick else FULL_PRODUCTS
    urs = np.sort(choose_samples("urs", case.fixed.grid.n_voxels, FRACTION, np.random.default_rng(SEED)))
    products = {"urs": {pet: probe_product(case, pet, urs, repeats) for pet in ENGINES},
                "all": {pet: probe_product(case, pet, None, repeats) for pet in ENGINES}}
    schedule = QUICK_SCHEDULE_2D if quick else FULL_SCHEDULE
    registrations = _registrations(case, schedule, "urs", ENGINES)
    registrations_gms = _registrations(case, schedule, "gms", GMS_ENGINES)
    speedups = {sampling: _cpu(rows["fhe1"]) / _cpu(rows["fhe2"]) for sampling, rows in products.items()}
    fhe2 = registrations["fhe2"]["bytes_per_iteration"]
    goals = {
        "fhe2_vs_fhe1_speedup": speedups,
        "fhe2_speedup_met": all(value >= GOAL_SPEEDUP for value in speedups.values()),
        "fhe2_bytes_met": all(fhe2[party] / 1e6 <= limit for party, limit in PAPER_FHE2_URS_MB.items()),
    }
    return {
        "title": TITLE, "issue": 5, "case": case.description, "sampling_fraction": FRACTION,
        "schedule": schedule.as_dict(), "products_per_measurement": repeats, "paper_fhe2_urs_mb": PAPER_FHE2_URS_MB,
        "products": products, "registrations": registrations, "registrations_gms": registrations_gms,
        "goals": goals, "summary": _summary(products, registrations, registrations_gms, goals),
        "tables": [_product_table(products), _registration_table(registrations, "URS"),
                   _registration_table(registrations_gms, "GMS")],
    }


def probe_product(case: KnownCase, pet: str, sample_index: np.ndarray | None, repeats: int) -> dict:
    """Per-party CPU time and bytes of the SSD joint product at the finest level.

    Opens the level twice: the first set-up carries the keys (fhe) or seeds (mpc) and the
    operand, the second the operand only, so their difference is the once-per-session part.
    """
    model = AffineModel("affine", case.fixed.dim, case.fixed.grid.center(), case.fixed.grid.half_extent())
    request = LevelRequest("ssd", 1, 0.0, model)
    values = normalize_intensity(case.moving.array)[0].ravel()
    features = (values if sample_index is None else values[sample_index])[:, None]
    reference = None
    with in_process_session(case.fixed, "clear") as proxy:
        proxy.hello(case.fixed.dim, "affine")
        proxy.start_level(0, request, sample_index)
        reference = proxy.product(features, np.ones((1, model.n_params + 1), dtype=bool))
        proxy.close()
    selection = np.ones((1, model.n_params + 1), dtype=bool)
    with in_process_session(case.fixed, pet) as proxy:
        proxy.hello(case.fixed.dim, "affine")
        clocks = _PartyClocks()
        setups = []
        for index in range(2):
            before = proxy.snapshot()
            proxy.start_level(index, request, sample_index)
            setups.append(traffic_between(proxy.snapshot(), before).as_dict())
        rows = []
        for _ in range(repeats):
            clocks.start()
            before, started = proxy.snapshot(), time.perf_counter()
            result = proxy.product(features, selection)
            wall = time.perf_counter() - started
            rows.append({"wall_seconds": wall, **clocks.stop(), **traffic_between(proxy.snapshot(), before).as_dict(),
                         "relative_error": float(np.max(np.abs(result - reference)) / np.max(np.abs(reference)))})
        proxy.close()
    key_bytes = {party: setups[0][party] - setups[1][party] for party in ("party1", "party2", "dealer")}
    return {
        "n": len(features),
        "party1_cpu_seconds": statistics.median(r["party1_cpu"] for r in rows),
        "party2_cpu_seconds": statistics.median(r["party2_cpu"] for r in rows),
        "dealer_cpu_seconds": statistics.median(r["dealer_cpu"] for r in rows),
        "wall_seconds": statistics.median(r["wall_seconds"] for r in rows),
        "bytes": {party: statistics.median(r[party] for r in rows) for party in ("party1", "party2", "dealer")},
        "key_bytes": key_bytes,
        "operand_bytes": setups[1],
        "max_relative_error": max(r["relative_error"] for r in rows),
    }


class _PartyClocks:
    """CPU clocks of this thread (party1) and of the session's party2 and dealer threads."""

    def __init__(self) -> None:
        self.threads = {"party1": threading.current_thread()}
        for thread in threading.enumerate():  # the session just started: the newest of each name
            if thread.name in ("party2", "dealer"):
                self.threads[thread.name] = thread
        self._started: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
                for name, thread in self.threads.items()}

    def start(self) -> None:
        self._started = self._now()

    def stop(self) -> dict[str, float]:
        now = self._now()
        return {f"{name}_cpu": now.get(name, 0.0) - self._started.get(name, 0.0) for name in ("party1", "party2", "dealer")}


def _cpu(row: dict) -> float:
    return row["party1_cpu_seconds"] + row["party2_cpu_seconds"] + row["dealer_cpu_seconds"]


def _registrations(case: KnownCase, schedule, sampling: str, engines: tuple[str, ...]) -> dict:
    """Whole registrations with ``sampling`` (10 %, seed 0) for clear and ``engines``."""
    runs = {pet: run_ppreg(case, schedule, pet, "ssd", sampling, FRACTION, SEED) for pet in ("clear", *engines)}
    rows = {}
    for pet, run in runs.items():
        records = [r for level in run.outcome.result.levels for r in level.iterations]
        rows[pet] = {
            "iterations": len(records),
            "finest_samples": run.outcome.result.levels[-1].n_samples,
            "wall_seconds": run.wall_seconds,
            "seconds_per_iteration": statistics.fmean(r.seconds for r in records),
            "bytes_per_iteration": {party: statistics.fmean(getattr(r.traffic, party) for r in records)
                                    for party in ("party1", "party2", "dealer")},
            "total_bytes": run.outcome.total_traffic.as_dict(),
            "rmse_vs_clear_px": transform_difference(run.transform, runs["clear"].transform, case.fixed.grid,
                                                     case.mask)["rmse_mm"],
            "rmse_vs_truth_px": run.accuracy["rmse_mm"],
        }
    return rows


def _mb(value: float) -> float:
    return value / 1e6


def _product_table(products: dict) -> dict:
    table = []
    for sampling, rows in products.items():
        for pet, row in rows.items():
            table.append([row["n"], pet, row["party1_cpu_seconds"], row["party2_cpu_seconds"],
                          row["dealer_cpu_seconds"] if pet == "mpc" else None, _mb(row["bytes"]["party1"]),
                          _mb(row["bytes"]["party2"]), _mb(row["bytes"]["dealer"]) if pet == "mpc" else None,
                          _mb(sum(row["key_bytes"].values())), _mb(sum(row["operand_bytes"][p] for p in
                                                                       ("party1", "party2", "dealer"))),
                          row["max_relative_error"]])
    return {
        "title": "The SSD joint product alone, finest level (r16, N = 6554 with URS 10 %, N = 65 536 with all pixels)",
        "columns": ["N", "engine", "party1 CPU s", "party2 CPU s", "dealer CPU s", "party1 MB", "party2 MB",
                    "dealer MB", "keys/seeds MB (once)", "operand MB (per level)", "max rel. error vs clear"],
        "rows": table,
        "notes": ["CPU s: each party's thread clock per product (median), so time spent waiting for the peer is "
                  "not counted; MB: what each party sends per product; keys/seeds: the first level's set-up "
                  "minus the second's (fhe: public context, fhe1 also its Galois keys; mpc: dealer seeds).",
                  f"The paper's PPIR(FHE)-v2 with URS sends {PAPER_FHE2_URS_MB['party1']} MB (party1) and "
                  f"{PAPER_FHE2_URS_MB['party2']} MB (party2) per iteration."],
    }


def _registration_table(rows: dict, sampling: str) -> dict:
    table = [[pet, row["iterations"], row["finest_samples"], row["seconds_per_iteration"], row["wall_seconds"],
              _mb(row["bytes_per_iteration"]["party1"]), _mb(row["bytes_per_iteration"]["party2"]),
              _mb(row["bytes_per_iteration"]["dealer"]), row["rmse_vs_clear_px"], row["rmse_vs_truth_px"]]
             for pet, row in rows.items()]
    for pet in GMS_ENGINES:
        paper = paper_row("affine", "SSD", sampling, pet)
        table.append([f"paper {paper.label}", None, None, max(paper.seconds_party1, paper.seconds_party2), None,
                      paper.mb_party1, paper.mb_party2, None, None, None])
    return {
        "title": f"Whole registrations with {sampling} 10 % (r16, known affine transform)",
        "columns": ["engine", "iterations", "samples (finest)", "s/iteration", "wall s", "party1 MB/iter",
                    "party2 MB/iter", "dealer MB/iter", "RMSE to clear (px)", "RMSE to truth (px)"],
        "rows": table,
        "notes": ["MB/iter: mean over every iteration of every level; s/iteration: party1's wall time per "
                  "evaluation (interpolation, optimiser and waiting for party2 included)."],
    }


def _summary(products: dict, registrations: dict, registrations_gms: dict, goals: dict) -> list[str]:
    lines = []
    for sampling, speedup in goals["fhe2_vs_fhe1_speedup"].items():
        n = products[sampling]["fhe2"]["n"]
        lines.append(f"N = {n}: fhe2 is {speedup:.1f}× faster than fhe1 per product (CPU of both parties; "
                     f"goal ≥ {GOAL_SPEEDUP:g}×)")
    fhe2 = registrations["fhe2"]["bytes_per_iteration"]
    lines.append(f"fhe2 with URS: {_mb(fhe2['party1']):.3f} / {_mb(fhe2['party2']):.4f} MB per iteration "
                 f"(party1 / party2), paper {PAPER_FHE2_URS_MB['party1']} / {PAPER_FHE2_URS_MB['party2']} MB; "
                 f"goal met: {'yes' if goals['fhe2_bytes_met'] else 'no'}")
    for pet in ENGINES:
        lines.append(f"{pet} registration (URS): {registrations[pet]['iterations']} iterations, RMSE to clear "
                     f"{registrations[pet]['rmse_vs_clear_px']:.4f} px")
    for pet in GMS_ENGINES:
        row = registrations_gms[pet]
        lines.append(f"{pet} registration (GMS): {row['iterations']} iterations, {row['seconds_per_iteration']:.3f} "
                     f"s/iter, {_mb(row['bytes_per_iteration']['party1']):.3f} / "
                     f"{_mb(row['bytes_per_iteration']['party2']):.4f} MB per iteration, RMSE to clear "
                     f"{row['rmse_vs_clear_px']:.4f} px")
    return lines
