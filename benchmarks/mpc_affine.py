"""Issue 4: the mpc engine against the clear engine and against generic Beaver.

Affine SSD on the 3D MNI case and the 2D r16 case, sampling all / URS 10 % / GMS 10 %.
For each: a clear and an mpc registration in the same run (time per iteration, bytes per
iteration per party, setup bytes, displacement between the two transforms); the bytes
at the finest level against the protocol's own minimum; and the paper's generic Beaver
product run over real channels at the same N and p (bytes measured on the wire).
"""

from __future__ import annotations

import statistics

import numpy as np

from benchmarks.cases import FULL_SCHEDULE, QUICK_SCHEDULE_2D, QUICK_SCHEDULE_3D, KnownCase, mni_3d, r16_2d
from benchmarks.generic_beaver import run_generic_beaver
from benchmarks.ppreg_runs import PARTIES, PpregRun, run_ppreg, run_summary
from benchmarks.product_probe import time_ssd_product
from ppreg.api import transform_difference
from ppreg.core.sampling import choose_samples
from ppreg.core.transforms import AffineModel
from ppreg.io.images import Image
from ppreg.similarity.base import normalize_intensity
from ppreg.similarity.ssd import steepest_descent_images

TITLE = "Affine SSD: mpc vs clear vs generic Beaver (issue 4)"
SAMPLINGS = ("all", "urs", "gms")
FRACTION = 0.1
SEED = 0
ELEMENT_BYTES = 8
FEATURE_COLUMNS = 1  # m: inverse-compositional SSD sends I(W) only
FULL_REPEATS = 3
GOAL_TIME_RATIO, GOAL_RMSE, GOAL_MINIMUM_RATIO, GOAL_BEAVER_SAVING = 3.0, 0.05, 1.2, 10.0


def run(quick: bool) -> dict:
    repeats = 1 if quick else FULL_REPEATS
    cases = ((mni_3d(quick), QUICK_SCHEDULE_3D if quick else FULL_SCHEDULE),
             (r16_2d(quick), QUICK_SCHEDULE_2D if quick else FULL_SCHEDULE))
    rows = [_measure(case, schedule, sampling, repeats) for case, schedule in cases for sampling in SAMPLINGS]
    return {
        "title": TITLE,
        "issue": 4,
        "cases": {case.name: {"description": case.description, "schedule": schedule.as_dict()}
                  for case, schedule in cases},
        "sampling_fraction": FRACTION,
        "rows": rows,
        "summary": [_summary_line(row) for row in rows],
        "tables": [_time_table(rows), _minimum_table(rows), _beaver_table(rows)],
    }


def _measure(case: KnownCase, schedule, sampling: str, repeats: int) -> dict:
    clear_runs = [run_ppreg(case, schedule, "clear", "ssd", sampling, FRACTION, SEED) for _ in range(repeats)]
    mpc_runs = [run_ppreg(case, schedule, "mpc", "ssd", sampling, FRACTION, SEED) for _ in range(repeats)]
    clear, mpc = run_summary(clear_runs[0]), run_summary(mpc_runs[0])
    finest = mpc["levels"][-1]
    sample_index = _finest_samples(case, sampling, finest["samples"])
    return {
        "case": case.name, "unit": case.unit, "sampling": sampling, "p": case.n_params,
        "clear": clear, "mpc": mpc,
        "timing": _timing(clear_runs, mpc_runs),
        "mpc_vs_clear": transform_difference(mpc_runs[0].transform, clear_runs[0].transform, case.fixed.grid, case.mask),
        "minimum_bytes": _minimum_bytes(finest["samples"], case.n_params),
        "beaver": run_generic_beaver(*_paper_operands(case, sample_index)),
        "product_only": {pet: time_ssd_product(case.fixed, case.moving, pet, sample_index) for pet in ("clear", "mpc")},
    }


def _timing(clear_runs: list[PpregRun], mpc_runs: list[PpregRun]) -> dict:
    """Medians over the repeats of: finest-level and all-level seconds per iteration, wall."""
    def stats(runs):
        finest = [statistics.fmean(r.seconds for r in run.outcome.result.levels[-1].iterations) for run in runs]
        overall = [statistics.fmean(r.seconds for level in run.outcome.result.levels for r in level.iterations)
                   for run in runs]
        wall_per_iteration = [run.wall_seconds / sum(len(level.iterations) for level in run.outcome.result.levels)
                              for run in runs]
        return {"finest_seconds_per_iteration": statistics.median(finest),
                "seconds_per_iteration": statistics.median(overall),
                "wall_seconds": statistics.median(run.wall_seconds for run in runs),
                "wall_seconds_per_iteration": statistics.median(wall_per_iteration),
                "repeats": len(runs)}

    clear, mpc = stats(clear_runs), stats(mpc_runs)
    return {"clear": clear, "mpc": mpc,
            "ratio_finest": mpc["finest_seconds_per_iteration"] / clear["finest_seconds_per_iteration"],
            "ratio_all_levels": mpc["seconds_per_iteration"] / clear["seconds_per_iteration"],
            "ratio_wall": mpc["wall_seconds"] / clear["wall_seconds"],
            "ratio_wall_per_iteration": mpc["wall_seconds_per_iteration"] / clear["wall_seconds_per_iteration"]}


def _minimum_bytes(n: int, p: int) -> dict:
    """The protocol's own minimum per SSD iteration (ring elements of 8 bytes, no framing)."""
    return {"party1": ELEMENT_BYTES * n * FEATURE_COLUMNS, "party2": ELEMENT_BYTES * (p + 1),
            "dealer": ELEMENT_BYTES * (p + 1)}


def _finest_samples(case: KnownCase, sampling: str, count: int) -> np.ndarray | None:
    """Voxels for the product probe and the Beaver run: all, or a URS set of the mpc run's size."""
    if sampling == "all":
        return None
    n_voxels = case.fixed.grid.n_voxels
    indices = choose_samples("urs", n_voxels, count / n_voxels, np.random.default_rng(SEED))
    return indices


def _paper_operands(case: KnownCase, sample_index: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The paper's S = ∇I·∂W/∂θ (party1's moving image, N × p) and J (N,) at the finest level."""
    moving = Image(array=normalize_intensity(case.moving.array)[0], grid=case.moving.grid)
    model = AffineModel("affine", case.fixed.dim, case.fixed.grid.center(), case.fixed.grid.half_extent())
    steepest, _ = steepest_descent_images(moving, model, sample_index)
    values = normalize_intensity(case.fixed.array)[0].ravel()
    return steepest, values if sample_index is None else values[sample_index]


def _sampling_label(sampling: str) -> str:
    return "all" if sampling == "all" else f"{sampling.upper()} {FRACTION:.0%}"


def _time_table(rows: list[dict]) -> dict:
    table_rows = []
    for row in rows:
        timing, agreement = row["timing"], row["mpc_vs_clear"]
        table_rows.append([
            row["case"], _sampling_label(row["sampling"]), row["mpc"]["levels"][-1]["samples"],
            f"{row['clear']['iterations']} / {row['mpc']['iterations']}",
            timing["clear"]["finest_seconds_per_iteration"], timing["mpc"]["finest_seconds_per_iteration"],
            timing["ratio_finest"], timing["ratio_all_levels"],
            timing["clear"]["wall_seconds"], timing["mpc"]["wall_seconds"],
            timing["clear"]["wall_seconds_per_iteration"], timing["mpc"]["wall_seconds_per_iteration"],
            timing["ratio_wall_per_iteration"],
            agreement["rmse_mm"], agreement["max_mm"],
            f"{row['clear']['accuracy_vs_truth']['rmse_mm']:.3f} / {row['mpc']['accuracy_vs_truth']['rmse_mm']:.3f}",
            "yes" if timing["ratio_wall_per_iteration"] <= GOAL_TIME_RATIO and agreement["rmse_mm"] <= GOAL_RMSE
            else "no",
            "yes" if timing["ratio_finest"] <= GOAL_TIME_RATIO else "no",
        ])
    return {
        "title": "Time per iteration and agreement, mpc vs clear (same run)",
        "columns": ["case", "sampling", "N (finest)", "evaluations clear / mpc", "clear s/iter (finest)",
                    "mpc s/iter (finest)", "ratio mpc/clear (finest)", "ratio (all levels)", "clear wall s",
                    "mpc wall s", "clear wall s/iter", "mpc wall s/iter", "wall s/iter ratio",
                    "RMSE mpc vs clear (mm or px)", "max mpc vs clear", "RMSE vs truth clear / mpc",
                    f"goal met (wall s/iter ratio ≤ {GOAL_TIME_RATIO:g}, RMSE ≤ {GOAL_RMSE:g})",
                    f"finest-level evaluation ratio ≤ {GOAL_TIME_RATIO:g}"],
        "rows": table_rows,
        "notes": [
            "Seconds per iteration are the driver's own per-evaluation records "
            "(`outcome.result.levels[*].iterations[*].seconds`: interpolation, the joint product, the "
            "Levenberg-Marquardt step), mean over a level's iterations, median over the repeats. Wall is "
            "the whole in-process session including level setup. party1, party2 and the dealer are threads "
            "of one process sharing the cores.",
            "Wall s/iter: the session's wall time over its iterations (evaluations), each engine's own count: "
            "the time per iteration a user waits, and the issue's measure (docs/mpc.md, 'Speed'). The finest-level "
            "evaluation ratio isolates the product's fixed latency: party1, party2 and the dealer are threads "
            "sharing one interpreter lock, so every party's CPU work and each hand-over adds to an evaluation "
            "that takes clear only a few hundred µs at N ≈ 6 500.",
            "RMSE/max: displacement between the mpc and the clear transforms over the mask "
            "(`transform_difference`), in mm (3D) or px (2D).",
        ],
    }


def _minimum_table(rows: list[dict]) -> dict:
    table_rows = []
    for row in rows:
        finest = row["mpc"]["levels"][-1]
        measured, minimum = finest["bytes_per_iteration"], row["minimum_bytes"]
        ratios = {party: measured[party] / minimum[party] for party in PARTIES}
        total_ratio = sum(measured.values()) / sum(minimum.values())
        setup = row["mpc"]["setup_bytes"]
        table_rows.append([
            row["case"], _sampling_label(row["sampling"]), finest["samples"], row["p"],
            *[value for party in PARTIES for value in (round(measured[party]), minimum[party], ratios[party])],
            total_ratio, finest["rounds_per_iteration"], " / ".join(str(setup[party]) for party in PARTIES),
            "yes" if ratios["party1"] <= GOAL_MINIMUM_RATIO else "no",
            "yes" if max(ratios.values()) <= GOAL_MINIMUM_RATIO else "no",
        ])
    return {
        "title": "mpc bytes per iteration at the finest level vs the protocol's minimum",
        "columns": ["case", "sampling", "N", "p", "party1 B", "party1 min B", "party1 ratio", "party2 B",
                    "party2 min B", "party2 ratio", "dealer B", "dealer min B", "dealer ratio", "total ratio",
                    "messages/iter", "setup B party1 / party2 / dealer",
                    f"party1 ≤ {GOAL_MINIMUM_RATIO:g}×", f"every party ≤ {GOAL_MINIMUM_RATIO:g}×"],
        "rows": table_rows,
        "notes": [
            "Measured: whole frames sent per iteration (wire version 2: 4-byte length prefix, binary header, "
            "arrays; 11 bytes of framing for party2's and the dealer's one-array messages), mean over the finest "
            "level's iterations (one product each). Minimum (ring elements only, docs/mpc.md): party1 8·N·m with "
            "m = 1 (I(W) − U), party2 8·(p+1) (its selected share entries), dealer 8·(p+1) (Z₁ to party1). "
            "party1's figure includes its request to the dealer (one per product).",
            "Setup: everything `run_affine` counts outside the iterations (hello, the per-level masked operand "
            "G̃ − V of N·(p+1) elements from party2, sample indices); the 32-byte dealer seeds are exchanged "
            "when the session opens, before that.",
        ],
    }


def _beaver_table(rows: list[dict]) -> dict:
    table_rows = []
    for row in rows:
        beaver, ours = row["beaver"], row["mpc"]["levels"][-1]["bytes_per_iteration"]
        savings = {party: beaver["bytes_per_iteration"][party] / ours[party] for party in ("party1", "party2")}
        table_rows.append([
            row["case"], _sampling_label(row["sampling"]), beaver["n"], beaver["p"],
            *[round(beaver["bytes_per_iteration"][party]) for party in PARTIES],
            *[round(ours[party]) for party in PARTIES],
            savings["party1"], savings["party2"],
            "yes" if min(savings.values()) >= GOAL_BEAVER_SAVING else "no",
            beaver["online_seconds_per_iteration"], beaver["triple_seconds_per_iteration"],
            row["product_only"]["mpc"]["seconds"], row["product_only"]["clear"]["seconds"],
            row["timing"]["mpc"]["finest_seconds_per_iteration"],
            "yes" if beaver["check"]["equals_ring_product"] and beaver["check"]["within_bound"] else "NO",
        ])
    return {
        "title": "Ours vs the paper's generic Beaver product on shared S and J (same N and p, per iteration)",
        "columns": ["case", "sampling", "N", "p", "Beaver party1 B", "Beaver party2 B", "Beaver dealer B",
                    "ours party1 B", "ours party2 B", "ours dealer B", "party1 saving ×", "party2 saving ×",
                    f"≥ {GOAL_BEAVER_SAVING:g}× for both", "Beaver online s", "Beaver triple s",
                    "ours product s", "clear product s", "ours mpc s/iter (whole iteration)", "Beaver = Sᵀ·J"],
        "rows": table_rows,
        "notes": [
            "Beaver: party1 re-shares S (N·p elements) and both parties open ε = Sᵀ − A (N·p) and δ = J − b (N) "
            "every iteration; party2 also returns its p-element share of the result; the dealer sends C₁ "
            "(p elements; A, B and C₀ expand from seeds). Bytes are frames measured on in-process channels "
            "(`generic_beaver.py`), mean of 3 iterations; element-only formula: party1 8·(2·N·p + N), "
            "party2 8·(N·p + N + p).",
            "Beaver online s: from party1 sharing S to party1 holding Sᵀ·J (median of 3); triple s: the "
            "dealer's offline work per iteration. Ours product s: one mpc product Fᵀ·[S_J, J] alone at the "
            "same N (median of 5, `product_probe.py`); clear product s: the same through the clear engine.",
            "Beaver = Sᵀ·J: the revealed ring element equals the ring product of the encodings exactly, and "
            "its decoding is within the fixed-point error bound of the float64 Sᵀ·J.",
        ],
    }


def _summary_line(row: dict) -> str:
    finest = row["mpc"]["levels"][-1]
    measured, minimum = finest["bytes_per_iteration"], row["minimum_bytes"]
    beaver = row["beaver"]["bytes_per_iteration"]
    return (f"{row['case']}, {_sampling_label(row['sampling'])}: mpc/clear wall time per iteration "
            f"{row['timing']['ratio_wall_per_iteration']:.2f} (evaluation at the finest level "
            f"{row['timing']['ratio_finest']:.2f}), RMSE mpc vs clear {row['mpc_vs_clear']['rmse_mm']:.4f} "
            f"{row['unit']}; party1 {measured['party1'] / minimum['party1']:.3f}× its minimum, party2 "
            f"{measured['party2'] / minimum['party2']:.2f}×; generic Beaver sends "
            f"{beaver['party1'] / measured['party1']:.1f}× (party1) and {beaver['party2'] / measured['party2']:.0f}× "
            f"(party2) more")
