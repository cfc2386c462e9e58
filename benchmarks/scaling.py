"""Scaling: time and bytes per iteration per party against image size, per engine (issue 9).

Affine SSD with every voxel sampled, at one full-resolution level and a fixed number of
iterations (convergence threshold 1e-12, so no level stops early), so each iteration does the same work. 2D: the bundled
r16 slice resampled to 64² … 1024² over its field of view; 3D: the MNI T1 resampled to
48×40×48 … 192×160×192 (the paper's SyN grid). The moving image is the fixed one under a
seeded random affine transform. A log-log line fitted through (voxels, cost) per engine
gives the growth exponent: 1 means cost proportional to the number of voxels.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import SimpleITK as sitk

from benchmarks.cases import DATA_DIR
from benchmarks.ppreg_runs import PARTIES
from ppreg.api import run_affine
from ppreg.config import AffineConfig, load_config
from ppreg.io.images import Image, image_from_sitk
from ppreg.secure.runtime import in_process_session
from ppreg.synthetic import known_affine, warp_with

TITLE = "Scaling: time and bytes per iteration against image size, clear / mpc / fhe2 (issue 9)"
SEED = 9
SIZES_2D = (64, 128, 256, 512, 1024)
SIZES_3D = ((48, 40, 48), (96, 80, 96), (192, 160, 192))
QUICK_SIZES_2D = (64, 128, 256)
ENGINES = ("clear", "mpc", "fhe2")
# fhe2 encrypts party2's operand per level: at 192×160×192 that is 2.9 GB of ciphertext, 88 s
# of set-up and a 9.6 GB peak for the in-process run (measured); every size here fits.
FHE2_MAX_VOXELS = 6_000_000
ITERATIONS_SMALL, ITERATIONS_LARGE, LARGE_VOXELS = 5, 3, 1_000_000


def run(quick: bool) -> dict:
    rng = np.random.default_rng(SEED)
    cases = [("2D", (side, side), _resampled("r16.png", (side, side)))
             for side in (QUICK_SIZES_2D if quick else SIZES_2D)]
    if not quick:
        cases += [("3D", size, _resampled("mni_t1_2mm.nii.gz", size)) for size in SIZES_3D]
    measurements = []
    for dim, size, fixed in cases:
        moving = _moved(fixed, rng)
        for pet in ENGINES:
            if pet == "fhe2" and fixed.array.size > FHE2_MAX_VOXELS:
                continue
            measurements.append({"dim": dim, "size": list(size), "voxels": int(fixed.array.size), "pet": pet,
                                 **_per_iteration(fixed, moving, pet)})
    slopes = {dim: {pet: _slopes([m for m in measurements if m["dim"] == dim and m["pet"] == pet])
                    for pet in ENGINES} for dim in ("2D", "3D")}
    return {"title": TITLE, "issue": 9, "seed": SEED, "engines": list(ENGINES), "measurements": measurements,
            "slopes": slopes, "summary": _summary(slopes),
            "tables": [_measurement_table(measurements), _slope_table(slopes)]}


def _resampled(name: str, size: tuple[int, ...]) -> Image:
    """The bundled image resampled to ``size`` voxels over its own field of view (smoothed when shrinking)."""
    image = sitk.ReadImage(str(DATA_DIR / name), sitk.sitkFloat64)
    extent = np.asarray(image.GetSize()) * np.asarray(image.GetSpacing())
    spacing = extent / np.asarray(size)
    if np.any(spacing > np.asarray(image.GetSpacing())):
        image = sitk.SmoothingRecursiveGaussian(image, list(np.maximum(spacing - image.GetSpacing(), 1e-3) / 2))
    direction = np.asarray(image.GetDirection()).reshape(image.GetDimension(), image.GetDimension())
    origin = np.asarray(image.GetOrigin()) + direction @ ((spacing - np.asarray(image.GetSpacing())) / 2)
    resampled = sitk.Resample(image, [int(n) for n in size], sitk.Transform(), sitk.sitkLinear, origin.tolist(),
                              spacing.tolist(), image.GetDirection(), 0.0, sitk.sitkFloat64)
    return image_from_sitk(resampled)


def _moved(fixed: Image, rng: np.random.Generator) -> Image:
    """The fixed image under a random small affine transform (rotation ≤ 5°, shift ≤ 2 % of the extent)."""
    extent = np.asarray(fixed.grid.size) * np.asarray(fixed.grid.spacing)
    matrix, translation, center = known_affine(fixed.dim, rng.uniform(-5, 5), rng.uniform(-0.02, 0.02) * extent,
                                               rng.uniform(-0.03, 0.03), fixed.grid.center())
    return warp_with(fixed, matrix, translation, center)


def _per_iteration(fixed: Image, moving: Image, pet: str) -> dict:
    """Mean seconds and bytes per party of the iterations of one full-resolution level."""
    iterations = ITERATIONS_LARGE if fixed.array.size > LARGE_VOXELS else ITERATIONS_SMALL
    config = load_config(AffineConfig, None, {"pet": pet, "levels": "1", "smoothing": "0",
                                              "iterations": str(iterations), "convergence": 1e-12, "seed": SEED})
    started = time.perf_counter()
    with in_process_session(fixed, pet) as proxy:
        outcome = run_affine(moving, proxy, config)
    wall = time.perf_counter() - started
    level = outcome.result.levels[0]
    records = level.iterations
    return {"iterations": len(records), "wall_seconds": wall, "setup_seconds": level.setup_seconds,
            "seconds_per_iteration": statistics.fmean(r.seconds for r in records),
            "bytes_per_iteration": {party: statistics.fmean(getattr(r.traffic, party) for r in records)
                                    for party in PARTIES},
            "setup_bytes": {party: getattr(level.setup_traffic, party) for party in PARTIES}}


def _slopes(rows: list[dict]) -> dict:
    """Fitted log-log slope of seconds and of each party's bytes per iteration against voxels."""
    if len(rows) < 2:
        return {}
    voxels = np.log([row["voxels"] for row in rows])
    fits = {"seconds": _fit(voxels, [row["seconds_per_iteration"] for row in rows])}
    for party in PARTIES:
        fits[f"bytes_{party}"] = _fit(voxels, [row["bytes_per_iteration"][party] for row in rows])
    return fits


def _fit(log_voxels: np.ndarray, values: list[float]) -> float | None:
    if min(values) <= 0:
        return None
    return round(float(np.polyfit(log_voxels, np.log(values), 1)[0]), 3) + 0.0  # + 0.0: no "-0.0"


def _measurement_table(measurements: list[dict]) -> dict:
    rows = [[m["dim"], "×".join(map(str, m["size"])), m["voxels"], m["pet"], m["iterations"],
             m["seconds_per_iteration"], *(m["bytes_per_iteration"][party] / 1e6 for party in PARTIES),
             m["setup_seconds"], m["setup_bytes"]["party2"] / 1e6] for m in measurements]
    return {"title": "Per iteration at one full-resolution level, every voxel sampled",
            "columns": ["dim", "size", "voxels", "engine", "iterations", "s/iter (party1)", "party1 MB/iter",
                        "party2 MB/iter", "dealer MB/iter", "level set-up s", "party2 set-up MB"],
            "rows": rows,
            "notes": ["s/iter: party1's wall time per iteration (interpolation, the joint product with party2 and the "
                      "dealer in threads of the same process, the Levenberg-Marquardt step), mean over the level.",
                      "fhe2 at 192×160×192: party2's encrypted operand is 2.9 GB per level (set-up 88 s, peak "
                      "9.6 GB for the in-process run on the development machine).",
                      "Set-up (once per level): party2's masked or encrypted operand; not part of the per-iteration "
                      "figures."]}


def _slope_table(slopes: dict) -> dict:
    rows = []
    for dim, per_engine in slopes.items():
        for pet, fits in per_engine.items():
            if fits:
                rows.append([dim, pet, fits["seconds"], fits["bytes_party1"], fits["bytes_party2"],
                             fits["bytes_dealer"]])
    return {"title": "Fitted log-log slope against the number of voxels (np.polyfit of log cost on log voxels)",
            "columns": ["dim", "engine", "time", "party1 bytes", "party2 bytes", "dealer bytes"],
            "rows": rows,
            "notes": ["1 = linear in the voxels; 0 = constant (the result alone crosses the wire). – : a party sends "
                      "nothing per iteration, or fewer than two sizes were measured."]}


def _summary(slopes: dict) -> list[str]:
    lines = []
    for dim, per_engine in slopes.items():
        for pet, fits in per_engine.items():
            if fits:
                lines.append(f"{dim} {pet}: time slope {fits['seconds']:.2f}, party1 bytes slope "
                             f"{_slope_text(fits['bytes_party1'])}, party2 {_slope_text(fits['bytes_party2'])}")
    return lines


def _slope_text(value: float | None) -> str:
    return "–" if value is None else f"{round(value, 2) + 0.0:.2f}"


def write_figures(result: dict, directory) -> list[dict]:
    """scaling.png: log-log time and bytes per iteration against voxels, one line per engine and dimension.

    matplotlib is optional (the ``bench`` extra): without it the figure is skipped with a note.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("scaling: matplotlib is not installed (pip install 'ppreg[bench]'); scaling.png skipped")
        return []
    figure, (time_axes, bytes_axes) = plt.subplots(1, 2, figsize=(11, 4.5))
    colours = {pet: f"C{index}" for index, pet in enumerate(result["engines"])}
    for dim in ("2D", "3D"):
        for pet in result["engines"]:
            rows = [m for m in result["measurements"] if m["dim"] == dim and m["pet"] == pet]
            if not rows:
                continue
            voxels = [m["voxels"] for m in rows]
            style = "-o" if dim == "2D" else "--s"
            time_axes.plot(voxels, [m["seconds_per_iteration"] for m in rows], style, color=colours[pet],
                           label=f"{pet} {dim}")
            heavier = [max(m["bytes_per_iteration"]["party1"], m["bytes_per_iteration"]["party2"]) for m in rows]
            if min(heavier) > 0:
                bytes_axes.plot(voxels, heavier, style, color=colours[pet], label=f"{pet} {dim}")
    for axes, label in ((time_axes, "s per iteration (party1)"), (bytes_axes, "bytes per iteration (busier party)")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("voxels")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle("ppreg affine SSD, one level, every voxel sampled")
    figure.tight_layout()
    figure.savefig(directory / "scaling.png", dpi=110)
    plt.close(figure)
    return [{"file": "scaling.png", "caption": "Time and bytes per iteration against voxels (log-log)"}]
