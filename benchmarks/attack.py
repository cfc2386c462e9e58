"""Issue 10: how much of party2's image party1 can reconstruct, and what --reveal-noise costs.

party1 runs an affine SSD and a B-spline registration against r16 (256², ANTs data)
through the mpc engine while :class:`benchmarks.attack_model.Eavesdropper` keeps what it
sees. Per pyramid level, every revealed entry is a linear equation in party2's level
image J; party1 solves the stacked equations by regularised least squares
(attack_model.reconstruct) and we score the estimate against the true J inside the brain
mask: PSNR (J is normalised to [0, 1], the estimate clipped to that range, which party1
knows) and Pearson correlation. The regularisation (damping × prior width) is the best of
a small grid for each level — an oracle choice, so the figures are an upper bound of
this attack, the conservative side for a privacy claim.

Two cases per model: *known* (moving = r16 moved by a known transform; registration RMSE
against the truth is measured) and *inter-subject* (moving = r64, a different brain: the
revealed values then carry no help from party1's own image resembling J). References per
level: party1's own warped moving image I(W) as an estimate of J, and the best constant.
The noise sweep runs the known case with ``reveal_noise`` σ (docs/privacy.md: each revealed
entry gets N(0, (σ·‖G[:, j]‖)²), as if party1's features carried per-sample noise σ).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.attack_model import Eavesdropper, level_equations, reconstruct_dampings, scores
from benchmarks.cases import DATA_DIR, r16_2d
from ppreg.api import run_affine, run_bspline, transform_difference
from ppreg.config import AffineConfig, BSplineConfig
from ppreg.core.pyramid import pyramid_level
from ppreg.io.images import Image, read_image
from ppreg.secure.runtime import in_process_session
from ppreg.similarity.base import normalize_intensity
from ppreg.synthetic import smooth_deformation, warp_with_deformation

TITLE = "Reconstruction attack on party2's image and the --reveal-noise trade-off (issue 10)"
PET = "mpc"
SIGMAS = {"affine": (0.0, 0.3, 1.0, 3.0), "bspline": (0.0, 0.01, 0.03, 0.1, 0.3)}
QUICK_SIGMAS = {"affine": (0.0, 1.0), "bspline": (0.0,)}
DAMPINGS = (1e-3, 1e-1, 1.0, 10.0)
BLURS = (0.5, 1.0)  # prior width (level voxels)
QUICK_GRID = ((1.0,), (1.0,))  # (dampings, blurs) tried in a quick run (it must fit the 3-minute quick budget)
LSQR_ITERATIONS = 100  # Golub-Kahan steps: LSQR's 100th iterate, for every damping at once
FULL = {"affine": dict(levels="4x2x1", smoothing="2x1x0", iterations="100x50x25"),
        "bspline": dict(levels="4x2x1", smoothing="2x1x0", iterations="50x30x20")}
QUICK = {"affine": dict(levels="4x2", smoothing="2x1", iterations="30x15"),
         "bspline": dict(levels="4x2", smoothing="2x1", iterations="15x8")}
SEARCHED_LEVELS = 2  # B-spline: full grid search on the two coarsest levels; finer ones reuse the best setting


def run(quick: bool) -> dict:
    schedules, sigmas = (QUICK, QUICK_SIGMAS) if quick else (FULL, SIGMAS)
    grid = QUICK_GRID if quick else (DAMPINGS, BLURS)
    fixed, mask = read_image(DATA_DIR / "r16.png"), read_image(DATA_DIR / "r16_mask.png").array > 0
    cases = known_cases(fixed)
    inter_subject = read_image(DATA_DIR / "r64.png")
    rows = []
    for model in ("affine", "bspline"):
        moving, truth = cases[model]
        for sigma in sigmas[model]:
            rows.append(measure(model, "known", fixed, moving, truth, mask, schedules[model], sigma, grid))
        rows.append(measure(model, "inter-subject", fixed, inter_subject, None, mask, schedules[model], 0.0, grid))
        if not quick:
            rows.append(measure(model, "inter-subject", fixed, inter_subject, None, mask, schedules[model], 0.0,
                                grid, sampling="urs"))
    return {"title": TITLE, "issue": 10, "pet": PET, "sigmas": sigmas, "schedules": schedules,
            "dampings": DAMPINGS, "blurs": BLURS, "runs": rows, "summary": summary(rows),
            "tables": [levels_table(rows), tradeoff_table(rows)]}


def known_cases(fixed: Image) -> dict:
    """(moving, truth transform) per model: r16 moved by a known affine / smooth deformation."""
    affine = r16_2d(False)
    control, coefficients = smooth_deformation(fixed.grid, 4.0, np.random.default_rng(3), mesh=4)
    return {"affine": (affine.moving, affine.truth),
            "bspline": (warp_with_deformation(fixed, control, coefficients), control.to_sitk(coefficients))}


def measure(model: str, case: str, fixed: Image, moving: Image, truth, mask: np.ndarray, schedule: dict,
            sigma: float, grid: tuple, sampling: str = "all") -> dict:
    """One registration with party1 eavesdropping, then the attack on every level.

    ``grid`` = (dampings, prior widths) searched; the B-spline's finer levels (from
    SEARCHED_LEVELS on) keep the best width of the level before and search the dampings only.
    """
    config_class, run_model = (AffineConfig, run_affine) if model == "affine" else (BSplineConfig, run_bspline)
    config = config_class(pet=PET, reveal_noise=sigma, sampling=sampling, **schedule).validate()
    started = time.perf_counter()
    with in_process_session(fixed, PET) as proxy:
        spy = Eavesdropper(proxy)
        outcome = run_model(moving, proxy, config)
    seconds = time.perf_counter() - started
    accuracy = None if truth is None else transform_difference(outcome.sitk_transform(), truth, fixed.grid, mask)
    normalized = Image(array=normalize_intensity(fixed.array)[0], grid=fixed.grid)
    dampings, blurs = grid
    levels = []
    for level in spy.levels:
        level_truth = pyramid_level(normalized, level.request.shrink, level.request.sigma).array
        level_mask = pyramid_level(Image(array=mask.astype(float), grid=fixed.grid), level.request.shrink, 0).array > 0.5
        searched_blurs = (levels[-1]["blur"],) if model == "bspline" and level.index >= SEARCHED_LEVELS else blurs
        levels.append(attack_level(model, level, level_truth, level_mask, dampings, searched_blurs))
    return {"model": model, "case": case, "sigma": sigma, "sampling": sampling, "seconds": seconds,
            "rmse_mm": None if accuracy is None else accuracy["rmse_mm"],
            "evaluations": sum(len(level.iterations) for level in outcome.result.levels),
            "cost_final": outcome.result.metric_final, "levels": levels}


def attack_level(model: str, level, truth: np.ndarray, mask: np.ndarray, dampings, blurs) -> dict:
    """Best-scoring reconstruction of the level image over ``dampings`` × ``blurs``
    (one factorisation per blur serves every damping)."""
    equations, values, norms = level_equations(model, level)
    model_error = float(np.max(np.abs(equations @ truth.ravel() - values)) / np.max(np.abs(values)))
    started, best = time.perf_counter(), None
    for blur in blurs:
        estimates = reconstruct_dampings(equations, values, norms, truth.shape, dampings, blur, LSQR_ITERATIONS)
        for damping, estimate in zip(dampings, estimates):
            score = scores(np.clip(estimate, 0, 1), truth, mask)
            if best is None or score["psnr_db"] > best["psnr_db"]:
                best = {**score, "damping": damping, "blur": blur}
    own = level.features[-1][:, -1]  # party1's last I(W) at the samples
    sampled = mask.ravel() if level.sample_index is None else mask.ravel()[level.sample_index]
    own_truth = truth.ravel() if level.sample_index is None else truth.ravel()[level.sample_index]
    return {"level": level.index, "shrink": level.request.shrink, "unknowns": truth.size,
            "samples": len(own), "equations": int(len(values)), "evaluations": len(level.products),
            "model_error": model_error, **best, "attack_seconds": time.perf_counter() - started,
            "own_warped": scores(own, own_truth, sampled),
            "constant_psnr_db": scores(np.full(truth.shape, truth[mask].mean()), truth, mask)["psnr_db"]}


def _best_level(run: dict) -> dict:
    return max(run["levels"], key=lambda level: level["correlation"])


def levels_table(rows: list[dict]) -> dict:
    table = [[run["model"], run["case"] + (" (URS 10 %)" if run["sampling"] != "all" else ""), level["level"],
              level["unknowns"], level["equations"], level["psnr_db"], level["correlation"],
              level["own_warped"]["psnr_db"], level["own_warped"]["correlation"], level["constant_psnr_db"],
              level["model_error"]]
             for run in rows if run["sigma"] == 0 for level in run["levels"]]
    return {"title": "Attack without noise: estimate of J per level (inside the brain mask)",
            "columns": ["model", "case", "level", "unknowns (voxels)", "revealed equations", "attack PSNR (dB)",
                        "attack correlation", "party1's I(W) PSNR", "party1's I(W) correlation",
                        "best constant PSNR", "model check |A·J − r|/|r|"],
            "rows": table,
            "notes": ["Level 0 is the coarsest. 'revealed equations' = revealed entries of Fᵀ·G over the level's "
                      "evaluations (affine SSD: p + 1 = 7 each; B-spline: d·P + 1 each).",
                      "party1's I(W): its own warped moving image at the last evaluation, which it holds anyway "
                      "(at the samples under URS).",
                      "model check: the linear model of the revealed values, evaluated at the true J, against what "
                      "party1 received (mpc fixed-point error only when σ = 0)."]}


def tradeoff_table(rows: list[dict]) -> dict:
    table = []
    for run in rows:
        if run["case"] != "known":
            continue
        best, finest = _best_level(run), run["levels"][-1]
        table.append([run["model"], run["sigma"], run["rmse_mm"], run["evaluations"], best["level"], best["psnr_db"],
                      best["correlation"], finest["psnr_db"], finest["correlation"]])
    return {"title": "Accuracy vs leakage: --reveal-noise σ on the known-transform cases",
            "columns": ["model", "σ", "registration RMSE vs truth (mm)", "evaluations", "best attacked level",
                        "attack PSNR there (dB)", "attack correlation there", "finest-level PSNR (dB)",
                        "finest-level correlation"],
            "rows": table,
            "notes": ["RMSE: displacement ‖T(x) − T_true(x)‖ over the brain mask of r16 (1 mm pixels).",
                      "σ: per-sample feature noise (normalised intensity for I(W); intensity per mm for the "
                      "B-spline's ∇Ĩ); each revealed entry Fᵀ·G[k, j] gets N(0, (σ·‖G[:, j]‖)²)."]}


def summary(rows: list[dict]) -> list[str]:
    lines = []
    for run in rows:
        best = _best_level(run)
        label = f"{run['model']} {run['case']}" + (" URS 10%" if run["sampling"] != "all" else "") + f", σ = {run['sigma']:g}"
        rmse = "" if run["rmse_mm"] is None else f"RMSE vs truth {run['rmse_mm']:.3f} mm; "
        lines.append(f"{label}: {rmse}attack best at level {best['level']}: PSNR {best['psnr_db']:.1f} dB, "
                     f"correlation {best['correlation']:.2f} (party1's own I(W): {best['own_warped']['correlation']:.2f})")
    return lines
