"""The "Paper comparison" table at the top of RESULTS.md: every row of the paper's tables beside ours.

Built only from the results JSON (never from memory): for each :data:`benchmarks.paper.ROWS`
entry, :func:`our_figures` looks up the benchmark that measured the same model, metric,
sampling and engine, and the memory pass (``memory.json``) adds peak memory per party.
A row we did not measure shows "—" and says why (an engine that refuses the model by design:
"not supported: <reason>"); nothing is estimated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.paper import ROWS, PaperRow
from ppreg.secure.engines import supports

MB = 1e6
BEAT_FACTOR = 10.0

NOT_MEASURED: dict[tuple[str, str, str, str], str] = {}
"""Paper rows no benchmark measures, with the reason (shown in the table)."""

NOT_SUPPORTED = {
    ("bspline", "fhe1"): "fhe1 refuses ppreg bspline before connecting: its DotProduct per control point would "
                         "cost P·d·12 rotations per chunk (docs/fhe.md); fhe2 serves the B-spline",
}
"""(model, engine) pairs an engine refuses by design (``ppreg.secure.engines.supports``), with the reason."""

METRIC_OF_MODEL = {("affine", "SSD"): "ssd", ("affine", "MI"): "mi", ("bspline", "SSD"): "bspline",
                   ("pointcloud", "SSD"): "points", ("ants", "CC"): "ants"}
"""The joint product (the engines' metric name) behind a paper row's model and metric."""

LOSS_REASONS = {
    ("affine", "SSD", "URS", "fhe1"): "party1 returns one masked result ciphertext at N = 8192 (DESIGN.md's 128-bit "
                                      "parameters); the paper's 0.06 MB fits its N = 4096",
    ("affine", "SSD", "URS", "fhe2"): "ours is party1's whole iteration (interpolation, Levenberg-Marquardt step, "
                                      "waiting for party2's decryption) with CKKS at N = 8192; the encrypted product "
                                      "alone is in fhe_affine's product table",
    ("affine", "SSD", "GMS", "fhe1"): "as for the URS row: one masked result ciphertext at N = 8192",
    ("affine", "SSD", "GMS", "fhe2"): "as for the URS row: party1's whole iteration with CKKS at N = 8192",
    ("pointcloud", "SSD", "all", "fhe1"): "CKKS at N = 8192 (128-bit security) where the paper used N = 4096; "
                                          "one closed-form product, so key set-up and encryption dominate",
    ("affine", "MI", "URS", "mpc"): "our secure MI masks the dense N × bins Parzen matrix (docs/mpc.md)",
}
"""Why we lose a row, where we know; shown only when the row does lose."""


@dataclass
class Ours:
    """Our figures for one paper row: party1's wall time per iteration and MB per iteration per party."""

    source: str
    seconds: float | None
    mb_party1: float | None
    mb_party2: float | None
    notes: list[str] = field(default_factory=list)


def comparison_table(results: list[dict]) -> dict:
    """The comparison as a RESULTS.md table dict (title, preamble, columns, rows, notes)."""
    by_name = {result["benchmark"]: result for result in results}
    rows = [comparison_row(paper, by_name) for paper in ROWS]
    losses = [f"Loses: {paper.table} {paper.label} ({row['mark']}): "
              + (LOSS_REASONS.get(paper.key) or row["cells"][-1] or "reason not analysed yet")
              for paper, row in zip(ROWS, rows)
              if "loses" in row["mark"]]
    return {
        "title": "Paper comparison",
        "preamble": [
            "One row per row of the paper's efficiency tables (Taiello et al. 2024; figures in `benchmarks/paper.py`), "
            "ours from the results JSON named in 'ours: source'. × = paper / ours (above 1: we use less). "
            f"Mark: '≥{BEAT_FACTOR:g}× bytes' when both parties send at least {BEAT_FACTOR:g}× less, "
            f"'≥{BEAT_FACTOR:g}× time' when an iteration is at least {BEAT_FACTOR:g}× faster, 'loses' when any ratio "
            "is below 1 (the reason is in the note)."],
        "columns": ["paper table", "paper row", "model", "metric", "sampling", "engine", "ours: source",
                    "s/iter ours", "s/iter paper", "time ×", "party1 MB/iter ours", "party1 MB/iter paper",
                    "party1 ×", "party2 MB/iter ours", "party2 MB/iter paper", "party2 ×",
                    "peak MB party1 / party2 / dealer", "mark", "note"],
        "rows": [row["cells"] for row in rows],
        "notes": [
            "s/iter ours: party1's wall time per iteration (mean over every iteration of every level unless the source "
            "says otherwise). party2 and the dealer work while party1 waits, so it covers their work too; it is "
            "compared with the larger of the paper's two per-party times.",
            "MB = 10⁶ bytes of whole frames sent per iteration (set-up per level and keys excluded, as in the paper).",
            "The paper's clear rows give 0.0 s (its rounding) and no bytes: there is nothing to divide.",
            "Our images differ from the paper's (docs/benchmarks.md, 'The cases'): 2D affine rows use the 256² r16 "
            "slice, not 1260×1090 PET; MI uses the MNI T1 at 2 mm, not 180×256×256 MRI to PET.",
            "Peak memory: ru_maxrss of each party's own process in the memory pass (three processes on 127.0.0.1, "
            "`memory.json`); the paper reports no memory figures, so there is no paper column.",
            *losses,
        ],
        "data": rows,
    }


def comparison_row(paper: PaperRow, by_name: dict) -> dict:
    """One comparison row: ratios, mark and note, plus the table cells."""
    ours = our_figures(paper, by_name)
    peak = _peak_memory(paper, by_name)
    paper_seconds = max((s for s in (paper.seconds_party1, paper.seconds_party2) if s is not None), default=None)
    time_ratio = _ratio(paper_seconds, ours.seconds if ours else None)
    ratio1 = _ratio(paper.mb_party1, ours.mb_party1 if ours else None)
    ratio2 = _ratio(paper.mb_party2, ours.mb_party2 if ours else None)
    comparable = (paper_seconds is not None and paper_seconds > 0) or paper.mb_party1 is not None
    mark, note = _mark_and_note(paper, ours, comparable, time_ratio, ratio1, ratio2)
    missing = "—"
    cells = [paper.table, paper.label, paper.model, paper.metric, paper.sampling, paper.engine,
             ours.source if ours else missing, _or(ours and ours.seconds, missing), paper_seconds,
             _or(time_ratio, missing), _or(ours and ours.mb_party1, missing), paper.mb_party1, _or(ratio1, missing),
             _or(ours and ours.mb_party2, missing), paper.mb_party2, _or(ratio2, missing),
             _peak_text(peak) if peak else missing, mark, note]
    return {"key": list(paper.key), "comparable": comparable, "measured": ours is not None,
            "time_ratio": time_ratio, "party1_ratio": ratio1, "party2_ratio": ratio2, "mark": mark, "cells": cells}


def our_figures(paper: PaperRow, by_name: dict) -> Ours | None:
    """Our measurement for the paper row, from whichever results JSON has it; None if none does."""
    for source in (_from_mpc_affine, _from_fhe_affine, _from_bspline, _from_clear_mi, _from_syn, _from_pointcloud,
                   _from_memory):
        ours = source(paper, by_name)
        if ours is not None:
            return ours
    return None


def _from_mpc_affine(paper: PaperRow, by_name: dict) -> Ours | None:
    result = by_name.get("mpc_affine")
    if not result or (paper.model, paper.metric) != ("affine", "SSD") or paper.engine not in ("clear", "mpc"):
        return None
    for row in result["rows"]:
        if row["case"] == "r16_2d" and row["sampling"] == paper.sampling.lower():
            run = row[paper.engine]
            per_iteration = _bytes_per_iteration(run["total_bytes"], run["setup_bytes"], run["iterations"])
            return Ours(f"mpc_affine: r16 256², {_sampling_text(paper.sampling)}",
                        row["timing"][paper.engine]["seconds_per_iteration"], *per_iteration)
    return None


def _from_fhe_affine(paper: PaperRow, by_name: dict) -> Ours | None:
    result = by_name.get("fhe_affine")
    if not result or paper.key[:2] != ("affine", "SSD") or paper.engine not in ("fhe1", "fhe2"):
        return None
    registrations = {"URS": "registrations", "GMS": "registrations_gms"}.get(paper.sampling)
    run = result.get(registrations, {}).get(paper.engine) if registrations else None
    if run is None:
        return None
    return Ours(f"fhe_affine: r16 256², {paper.sampling} 10 %", run["seconds_per_iteration"],
                run["bytes_per_iteration"]["party1"] / MB, run["bytes_per_iteration"]["party2"] / MB)


def _from_bspline(paper: PaperRow, by_name: dict) -> Ours | None:
    result = by_name.get("bspline")
    if not result or paper.key[:2] != ("bspline", "SSD"):
        return None
    runs = result["engines"] if paper.sampling == "all" else result.get("sampled", {}).get(paper.sampling.lower(), {})
    run = runs.get(paper.engine)
    if run is None:
        return None
    return Ours(f"bspline: r16 {result['size']}², {_sampling_text(paper.sampling)}, finest level", run["s_per_iter"],
                run["bytes_per_iter"]["party1"] / MB, run["bytes_per_iter"]["party2"] / MB)


def _from_clear_mi(paper: PaperRow, by_name: dict) -> Ours | None:
    result = by_name.get("clear_vs_simpleitk")
    if not result or paper.key != ("affine", "MI", "URS", "clear"):
        return None
    for row in result["rows"]:
        if row["metric"] == "mi":
            run = row["ppreg"]
            return Ours(f"clear_vs_simpleitk: MNI T1 3D, MI, sampling {row['sampling']}", run["seconds_per_iteration"],
                        0.0, 0.0)
    return None


def _from_syn(paper: PaperRow, by_name: dict) -> Ours | None:
    """The paper's own measure (a whole multi-level run / its iterations) when syn ran it, else the finest level."""
    result = by_name.get("syn")
    if not result or paper.model != "ants":
        return None
    schedule = result.get("schedule") or {}
    if paper.engine in schedule:
        run = schedule[paper.engine]
        return Ours(f"syn: MNI T1 at 192×160×192, levels {schedule['schedule']['levels']}, whole run / iterations",
                    run["s_per_iter"], run["MB_per_iter"]["party1"], run["MB_per_iter"]["party2"])
    grid, costs = max(result["cost"].items(), key=lambda item: max(run["voxels"] for run in item[1].values()))
    run = costs.get(paper.engine)
    if run is None:
        return None
    return Ours(f"syn: MNI T1 {grid}, finest level only", run["s_per_iter"], run["MB_per_iter"]["party1"],
                run["MB_per_iter"]["party2"],
                ["ours: the finest (largest) level alone; the paper averages its r3, r2, r1 levels"])


def _from_pointcloud(paper: PaperRow, by_name: dict) -> Ours | None:
    result = by_name.get("pointcloud")
    if not result or paper.model != "pointcloud":
        return None
    run = result["landmarks"].get(paper.engine)
    if run is None:
        return None
    return Ours(f"pointcloud: {run['points']} 3D landmarks, whole run", run["wall_seconds"],
                run["bytes"]["party1"] / MB, run["bytes"]["party2"] / MB)


def _from_memory(paper: PaperRow, by_name: dict) -> Ours | None:
    run = _memory_run(paper, by_name)
    if run is None or run.get("seconds_per_iteration") is None:
        return None
    mb = run["mb_per_iteration"]
    return Ours(f"memory: {run['case']} (three processes)", run["seconds_per_iteration"], mb["party1"], mb["party2"])


def _memory_run(paper: PaperRow, by_name: dict) -> dict | None:
    result = by_name.get("memory")
    if not result:
        return None
    return next((run for run in result["runs"] if run["paper_key"] and tuple(run["paper_key"]) == paper.key), None)


def _peak_memory(paper: PaperRow, by_name: dict) -> dict | None:
    run = _memory_run(paper, by_name)
    return run["peak_mb"] if run else None


def _bytes_per_iteration(total: dict, setup: dict, iterations: int) -> tuple[float | None, float | None]:
    if not iterations:
        return None, None
    return tuple((total[party] - setup[party]) / iterations / MB for party in ("party1", "party2"))


def _ratio(paper_value: float | None, ours: float | None) -> float | None:
    if paper_value is None or paper_value <= 0 or ours is None or ours <= 0:
        return None
    return paper_value / ours


def _mark_and_note(paper: PaperRow, ours: Ours | None, comparable: bool, time_ratio, ratio1, ratio2) -> tuple[str, str]:
    if ours is None:
        return "—", _not_measured_reason(paper)
    if not comparable:
        return "", "the paper's clear row: no time (0.0 s or –) and no bytes"
    byte_ratios = [r for r in (ratio1, ratio2) if r is not None]
    marks = []
    if byte_ratios and min(byte_ratios) >= BEAT_FACTOR:
        marks.append(f"≥{BEAT_FACTOR:g}× bytes")
    if time_ratio is not None and time_ratio >= BEAT_FACTOR:
        marks.append(f"≥{BEAT_FACTOR:g}× time")
    lost = [name for name, ratio in (("time", time_ratio), ("party1 bytes", ratio1), ("party2 bytes", ratio2))
            if ratio is not None and ratio < 1]
    if lost:
        marks.append("loses " + ", ".join(lost))
    return "; ".join(marks), "; ".join(ours.notes)


def unsupported_reason(paper: PaperRow) -> str | None:
    """"not supported: …" when our engine refuses the paper row's model by design, else None."""
    metric = METRIC_OF_MODEL.get((paper.model, paper.metric))
    if metric is None or paper.engine == "clear" or supports(paper.engine, metric):
        return None
    return "not supported: " + NOT_SUPPORTED.get((paper.model, paper.engine), f"{paper.engine} refuses {metric}")


def _not_measured_reason(paper: PaperRow) -> str:
    return unsupported_reason(paper) or NOT_MEASURED.get(paper.key, "not measured by any benchmark in this results "
                                                                      "folder")


def _peak_text(peak: dict) -> str:
    return " / ".join("–" if peak[party] is None else f"{peak[party]:.0f}" for party in ("party1", "party2", "dealer"))


def _or(value, missing: str):
    return missing if value is None else value


def _sampling_text(sampling: str) -> str:
    return "all pixels" if sampling == "all" else f"{sampling} 10 %"
