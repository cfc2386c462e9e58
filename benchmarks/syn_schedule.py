"""SyN cost measured as the paper measures it: a whole multi-level run divided by its iterations.

The paper's Table 5 figures (24 s, 152.25 MB per party per iteration) come from its script
(github.com/rtaiello/pp_dipy, pp_experiments/syn_cc_registration_3d.py): DIPY's
SymmetricDiffeomorphicRegistration with level_iters [10, 10, 5, 1] (coarse to fine; DIPY
shrinks level k by 2^k: 8, 4, 2, 1) on 192×160×192 images, total time / sum(level_iters) =
total / 26. The same schedule in ``ppreg ants`` options is :data:`PAPER_SCHEDULE`; clear and
mpc run it with the convergence test off, so both do all 26 iterations. Time is the whole
run / 26, as the paper's; bytes are the iterations' traffic / 26 (the paper counts the bits of
its MPC metric) and, beside it, the whole session's / 26, which adds the hello, the level
messages and party2's one-off transfer of its final fields (u2, u2⁻¹) to party1. Used by
:mod:`benchmarks.syn`.
"""

from __future__ import annotations

import statistics

from ppreg.api_syn import run_ants
from ppreg.config import AntsConfig
from ppreg.io.images import Image
from ppreg.secure.runtime import in_process_session

PAPER_SCHEDULE = {"levels": "8x4x2x1", "smoothing": "3x2x1x0", "iterations": "10x10x5x1"}
PARTIES = ("party1", "party2", "dealer")


def schedule_cost(fixed: Image, moving: Image, schedule: dict = PAPER_SCHEDULE) -> dict:
    """Whole-run seconds and bytes per party divided by the iteration count, per engine,
    with each level's per-iteration means beside them."""
    rows = {"schedule": schedule}
    for pet in ("clear", "mpc"):
        config = AntsConfig(pet=pet, convergence=0, **schedule).validate()
        with in_process_session(fixed, pet) as proxy:
            outcome = run_ants(moving, proxy, config)
        levels = outcome.result.levels
        records = [record for level in levels for record in level.iterations]
        total = outcome.total_traffic
        rows[pet] = {
            "iterations": len(records), "wall_s": outcome.wall_seconds,
            "s_per_iter": outcome.wall_seconds / len(records),
            "MB_per_iter": {p: sum(getattr(r.traffic, p) for r in records) / len(records) / 1e6 for p in PARTIES},
            "MB_per_iter_session": {p: getattr(total, p) / len(records) / 1e6 for p in PARTIES},
            "levels": [_level_row(level) for level in levels]}
    return rows


def _level_row(level) -> dict:
    return {"shrink": level.shrink, "voxels": level.n_samples, "iterations": len(level.iterations),
            "s_per_iter": statistics.mean(r.seconds for r in level.iterations), "setup_s": level.setup_seconds,
            "MB_per_iter": {p: statistics.mean(getattr(r.traffic, p) for r in level.iterations) / 1e6
                            for p in PARTIES}}


def _ratios(row: dict, paper: dict, key: str = "MB_per_iter") -> tuple[float, float]:
    heavier = max(row[key]["party1"], row[key]["party2"])
    return paper["s_per_iter"] / row["s_per_iter"], paper["MB_per_iter_per_party"] / heavier


def schedule_summary(schedule: dict, paper: dict) -> str:
    clear, mpc = schedule["clear"], schedule["mpc"]
    mb, session = mpc["MB_per_iter"], mpc["MB_per_iter_session"]
    time_ratio, bytes_ratio = _ratios(mpc, paper)
    session_ratio = _ratios(mpc, paper, "MB_per_iter_session")[1]
    return (f"paper's schedule at 192×160×192 (iterations {schedule['schedule']['iterations']} at shrink "
            f"{schedule['schedule']['levels']}, whole run / {mpc['iterations']}): mpc {mpc['s_per_iter']:.2f} s and "
            f"{mb['party1']:.2f}/{mb['party2']:.2f}/{mb['dealer']:.2f} MB (party1/party2/dealer) per iteration, "
            f"clear {clear['s_per_iter']:.2f} s (mpc/clear {mpc['s_per_iter'] / clear['s_per_iter']:.2f}×); against "
            f"the paper's {paper['s_per_iter']:g} s and {paper['MB_per_iter_per_party']:g} MB: {time_ratio:.1f}× "
            f"less time (goal ≥ 3×), {bytes_ratio:.1f}× fewer bytes (goal ≥ 10×); whole session / "
            f"{mpc['iterations']} (with party2's final fields): {session['party1']:.2f}/{session['party2']:.2f} MB, "
            f"{session_ratio:.1f}× fewer")


def schedule_tables(schedule: dict, paper: dict) -> list[dict]:
    """The average table and the per-level table (empty without a schedule run)."""
    if not schedule:
        return []
    columns = ["engine", "iterations", "s/iter (run/iterations)", "paper s/iter", "time ratio paper/ours",
               "party1 MB/iter", "party2 MB/iter", "dealer MB/iter", "paper MB/iter/party", "bytes ratio paper/ours",
               "session party1/party2 MB/iter", "session bytes ratio"]
    table = []
    for pet in ("clear", "mpc"):
        row, mb, session = schedule[pet], schedule[pet]["MB_per_iter"], schedule[pet]["MB_per_iter_session"]
        time_ratio, bytes_ratio = _ratios(row, paper)
        session_ratio = _ratios(row, paper, "MB_per_iter_session")[1]
        table.append([pet, row["iterations"], row["s_per_iter"], paper["s_per_iter"], time_ratio, mb["party1"],
                      mb["party2"], mb["dealer"], paper["MB_per_iter_per_party"],
                      bytes_ratio if pet == "mpc" else None, f"{session['party1']:.2f} / {session['party2']:.2f}",
                      session_ratio if pet == "mpc" else None])
    levels = [[pet, level["shrink"], level["voxels"], level["iterations"], level["s_per_iter"], level["setup_s"],
               *(level["MB_per_iter"][p] for p in PARTIES)]
              for pet in ("clear", "mpc") for level in schedule[pet]["levels"]]
    return [{"title": "Average per iteration over the paper's schedule at 192×160×192 (levels 8x4x2x1, iterations "
                      "10x10x5x1 = the paper's DIPY level_iters [10, 10, 5, 1]): whole run / 26, as the paper",
             "columns": columns, "rows": table,
             "notes": ["time: wall time of the whole registration (pyramid, level changes, field inversions) / 26; "
                       "bytes: the 26 iterations' bytes per party / 26 (the paper counts its MPC metric's bits); "
                       "session: every byte of the session / 26, with party2's final fields (u2, u2⁻¹, float32); "
                       "clear bytes are the clear engine's plain arrays",
                       "the paper: Table 5 (Abdomen MR-CT, 192×160×192, 2 mm), its script's total time / "
                       "sum(level_iters)"]},
            {"title": "The same runs per level (mean of the level's iterations; setup: pyramid level and field "
                      "resampling)",
             "columns": ["engine", "shrink", "voxels", "iterations", "s/iter", "setup s", "party1 MB/iter",
                         "party2 MB/iter", "dealer MB/iter"], "rows": levels}]
