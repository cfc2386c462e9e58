"""Issue 8: point-set registration (ppreg pointcloud) per engine, beside the paper.

193 landmarks drawn (seeded) from the boundary voxels of the bundled MNI brain mask,
moved by a known rigid transform (12° about an oblique axis, (6, −4, 9) mm) plus 1 mm
Gaussian noise: time and bytes per party for every available engine, accuracy against
the truth and the largest difference from the clear engine on the transformed points.
Then synthetic clouds of 10³, 10⁴, 10⁵ (and, in a full run, 10⁶ for clear and mpc)
points (N(0, (50 mm)²) per axis, same transform and noise) to show how time and bytes
grow with N (log-log slope over N).

Time is party1's wall time of the registration (hello to bye), median of the repeats;
session set-up (threads, dealer seeds) is not included. Bytes are whole wire frames
(docs/report.md): party1 = what party1 sends, party2 / dealer = what they send to
party1. MB = 10⁶ bytes.
"""

from __future__ import annotations

import contextlib
import statistics

import numpy as np

from benchmarks.cases import DATA_DIR
from benchmarks.paper import paper_row
from ppreg.api_pointcloud import PointcloudOutcome, run_pointcloud
from ppreg.errors import EngineUnavailableError
from ppreg.io.images import read_image
from ppreg.io.points import PointSet
from ppreg.secure.engines import PETS, check_available
from ppreg.secure.runtime import in_process_session
from ppreg.synthetic import known_affine
from ppreg.synthetic_points import move_points, surface_landmarks

TITLE = "Point-set registration: clear, mpc, fhe beside the paper (issue 8)"
LANDMARKS, NOISE_MM, SEED, DEGREES, TRANSLATION = 193, 1.0, 8, 12.0, (6.0, -4.0, 9.0)
QUICK_SIZES, FULL_SIZES = (10**3, 10**4, 10**5), (10**3, 10**4, 10**5, 10**6)
FHE_MAX_SIZE = 10**5  # fhe1 takes ~10 s at 10^5 points; 10^6 would dominate the full run
# Repeats (median time): landmarks, growth.
FULL_REPEATS, QUICK_REPEATS = (10, 3), (3, 1)
_PAPER_MPC, _PAPER_FHE = (paper_row("pointcloud", "SSD", "all", pet) for pet in ("mpc", "fhe1"))
PAPER = {  # Table A1, 193 points: seconds, MB per party
    "mpc": {"seconds": _PAPER_MPC.seconds_party1, "mb": _PAPER_MPC.mb_party1},
    "fhe": {"seconds_party1": _PAPER_FHE.seconds_party1, "seconds_party2": _PAPER_FHE.seconds_party2,
            "mb_party1": _PAPER_FHE.mb_party1, "mb_party2": _PAPER_FHE.mb_party2},
}


def run(quick: bool) -> dict:
    (repeats, growth_repeats), sizes = (QUICK_REPEATS, QUICK_SIZES) if quick else (FULL_REPEATS, FULL_SIZES)
    engines = available_engines()
    rng = np.random.default_rng(SEED)
    fixed = surface_landmarks(read_image(DATA_DIR / "mni_mask_2mm.nii.gz"), LANDMARKS, rng)
    landmarks = _measure_case(fixed, rng, engines, repeats)
    growth = {size: _measure_case(rng.normal(scale=50.0, size=(size, 3)), rng,
                                  [pet for pet in engines if size <= FHE_MAX_SIZE or not pet.startswith("fhe")],
                                  growth_repeats)
              for size in sizes}
    slopes = {pet: _slopes(growth, pet) for pet in engines}
    return {
        "title": TITLE,
        "issue": 8,
        "engines": engines,
        "repeats": {"landmarks": repeats, "growth": growth_repeats},
        "landmarks": landmarks,
        "growth": {str(size): rows for size, rows in growth.items()},
        "slopes": slopes,
        "paper": PAPER,
        "summary": _summary(landmarks, slopes),
        "tables": [_landmark_table(landmarks), _growth_table(growth, slopes)],
    }


def available_engines() -> list[str]:
    engines = []
    for pet in PETS:
        with contextlib.suppress(EngineUnavailableError):
            check_available(pet)
            engines.append(pet)
    return engines


def _measure_case(fixed: np.ndarray, rng: np.random.Generator, engines: list[str], repeats: int) -> dict:
    matrix, translation, center = known_affine(3, DEGREES, TRANSLATION, 0.0, fixed.mean(axis=0))
    moving = move_points(fixed, matrix, translation, center, NOISE_MM, rng)
    truth = (fixed - center) @ matrix.T + center + translation
    rows, oracle = {}, None
    for pet in engines:
        outcomes = [_register(fixed, moving, pet) for _ in range(repeats)]
        median = sorted(outcomes, key=lambda o: o.wall_seconds)[len(outcomes) // 2]
        mapped = median.result.moving_to_fixed(moving)
        if pet == "clear":
            oracle = mapped
        rows[pet] = {
            "points": len(fixed),
            "wall_seconds": statistics.median(o.wall_seconds for o in outcomes),
            "party2_busy_seconds": median.party2_report.get("busy_seconds"),
            "bytes": median.total_traffic.as_dict(),
            "fre_mm": median.result.fre_mm(),
            "displacement_rmse_mm": float(np.sqrt(np.mean(np.sum((median.result.fixed_to_moving(fixed) - truth) ** 2, 1)))),
            "max_difference_from_clear_mm": float(np.max(np.linalg.norm(mapped - oracle, axis=1))),
        }
    return rows


def _register(fixed: np.ndarray, moving: np.ndarray, pet: str) -> PointcloudOutcome:
    with in_process_session(PointSet(fixed), pet) as proxy:
        return run_pointcloud(PointSet(moving), proxy)


def _slopes(growth: dict, pet: str) -> dict:
    """Slopes of log(time) and log(bytes) against log(N): least squares over every N, and
    between the two largest N (where fixed costs such as fhe keys no longer dominate)."""
    measured = {size: rows[pet] for size, rows in growth.items() if pet in rows}
    log_sizes = np.log(np.array(list(measured), dtype=float))
    seconds = np.log([row["wall_seconds"] for row in measured.values()])
    party_bytes = np.log([row["bytes"]["party1"] + row["bytes"]["party2"] for row in measured.values()])
    return {"time": float(np.polyfit(log_sizes, seconds, 1)[0]), "bytes": float(np.polyfit(log_sizes, party_bytes, 1)[0]),
            "time_largest": float((seconds[-1] - seconds[-2]) / (log_sizes[-1] - log_sizes[-2])),
            "bytes_largest": float((party_bytes[-1] - party_bytes[-2]) / (log_sizes[-1] - log_sizes[-2]))}


def _mb(value: int) -> float:
    return value / 1e6


def _landmark_table(rows: dict) -> dict:
    table = []
    for pet, row in rows.items():
        table.append([pet, row["wall_seconds"], _mb(row["bytes"]["party1"]), _mb(row["bytes"]["party2"]),
                      _mb(row["bytes"]["dealer"]), row["fre_mm"], row["displacement_rmse_mm"],
                      row["max_difference_from_clear_mm"]])
    table.append(["paper mpc", PAPER["mpc"]["seconds"], PAPER["mpc"]["mb"], None, None, None, None, None])
    fhe = PAPER["fhe"]
    table.append(["paper fhe (party1 / party2)", f"{fhe['seconds_party1']} / {fhe['seconds_party2']}",
                  fhe["mb_party1"], fhe["mb_party2"], None, None, None, None])
    return {
        "title": f"{LANDMARKS} brain-surface landmarks, 3D, 1 mm noise",
        "columns": ["engine", "time (s)", "party1 MB", "party2 MB", "dealer MB", "FRE (mm)",
                    "displacement RMSE vs truth (mm)", "max diff. from clear (mm)"],
        "rows": table,
        "notes": ["Paper: Taiello et al. 2024; its MPC figure is one number for both parties.",
                  "fhe1/fhe2 return all d² entries of L in one result ciphertext (party1 sends one c1); "
                  "party2's bytes include the public keys."],
    }


def _growth_table(growth: dict, slopes: dict) -> dict:
    table = [[size, pet, row["wall_seconds"], _mb(row["bytes"]["party1"]), _mb(row["bytes"]["party2"]),
              row["max_difference_from_clear_mm"]]
             for size, rows in growth.items() for pet, row in rows.items()]
    notes = [f"log-log slope over N, {pet}: time {s['time']:.2f}, bytes {s['bytes']:.2f}; between the two largest N: "
             f"time {s['time_largest']:.2f}, bytes {s['bytes_largest']:.2f}" for pet, s in slopes.items()]
    return {"title": "Growth with N (synthetic clouds, 3D)",
            "columns": ["N", "engine", "time (s)", "party1 MB", "party2 MB", "max diff. from clear (mm)"],
            "rows": table, "notes": notes}


def _summary(landmarks: dict, slopes: dict) -> list[str]:
    lines = []
    for pet, row in landmarks.items():
        sent = row["bytes"]["party1"] + row["bytes"]["party2"] + row["bytes"]["dealer"]
        lines.append(f"{pet}, {LANDMARKS} landmarks: {row['wall_seconds']:.4f} s, {_mb(sent):.4f} MB in all, "
                     f"FRE {row['fre_mm']:.3f} mm, {row['max_difference_from_clear_mm']:.2g} mm from clear; "
                     f"growth slopes time {slopes[pet]['time']:.2f}, bytes {slopes[pet]['bytes']:.2f}")
    return lines
