"""Library entry points: quiet functions that return values (the CLI adds the noise)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ppreg.config import AffineConfig, BSplineConfig, config_as_dict
from ppreg.core.interpolation import resample
from ppreg.errors import InputError
from ppreg.io.images import Grid, Image, read_image, warped_output_path, write_image
from ppreg.io.outputs import OutputSet
from ppreg.io.report import image_description, write_report
from ppreg.io.transforms import mapped_points, read_linear_transform, read_transform, write_transform
from ppreg.registration.affine import AffineResult, AffineSettings, IterationCallback, register_affine
from ppreg.registration.bspline import BSplineSettings, register_bspline
from ppreg.secure.session import FixedPartyProxy, Traffic
from ppreg.privacy import bspline_revealed, revealed_quantities
from ppreg.qc import qc_picture, qc_report_entry, write_png


@dataclass
class AffineOutcome:
    """A finished image registration (affine or B-spline) as party1 sees it."""

    result: AffineResult
    config: AffineConfig
    fixed_grid: Grid
    wall_seconds: float
    total_traffic: Traffic
    party2_report: dict = field(default_factory=dict)
    reveal_noise: float = 0.0  # σ party2 applied to the revealed joint terms

    def sitk_transform(self) -> sitk.Transform:
        return self.result.sitk_transform()


def affine_settings(config: AffineConfig, moving: Image, initial_transform: str | None) -> AffineSettings:
    initial = None if initial_transform is None else read_linear_transform(initial_transform, moving.dim)
    return AffineSettings(
        levels=config.schedule(), transform=config.transform, metric=config.metric, sampling=config.sampling,
        sampling_fraction=config.sampling_fraction, bins=config.bins, seed=config.seed,
        convergence=config.convergence, initial=initial,
    )


def run_affine(
    moving: Image, proxy: FixedPartyProxy, config: AffineConfig, initial_transform: str | None = None,
    on_iteration: IterationCallback | None = None,
) -> AffineOutcome:
    """Register ``moving`` against the fixed image behind ``proxy`` (any engine, any transport)."""
    settings = affine_settings(config, moving, initial_transform)
    return _run_session(register_affine, moving, proxy, config, settings, on_iteration)


def bspline_settings(config: BSplineConfig, moving: Image, initial_transform: str | None) -> BSplineSettings:
    initial = None if initial_transform is None else read_linear_transform(initial_transform, moving.dim)
    return BSplineSettings(
        levels=config.schedule(), grid_spacing=config.grid_spacing, regularization=config.regularization,
        sampling=config.sampling, sampling_fraction=config.sampling_fraction, seed=config.seed,
        convergence=config.convergence, initial=initial,
    )


def run_bspline(
    moving: Image, proxy: FixedPartyProxy, config: BSplineConfig, initial_transform: str | None = None,
    on_iteration: IterationCallback | None = None,
) -> AffineOutcome:
    """B-spline registration of ``moving`` against the fixed image behind ``proxy``."""
    settings = bspline_settings(config, moving, initial_transform)
    return _run_session(register_bspline, moving, proxy, config, settings, on_iteration)


def _run_session(register, moving: Image, proxy: FixedPartyProxy, config, settings, on_iteration) -> AffineOutcome:
    """Run a driver to its end, close the session and collect time, traffic and party2's report."""
    started = time.perf_counter()
    proxy.reveal_noise = config.reveal_noise
    result = register(moving, proxy, settings, on_iteration)
    return AffineOutcome(result, config, proxy.fixed_grid, *close_session(proxy, started), proxy.reveal_noise)


def close_session(proxy: FixedPartyProxy, started: float) -> tuple[float, Traffic, dict]:
    """Say goodbye to party2; return the wall seconds since ``started``, the session's
    traffic per party and party2's own report (the tail of every ``run_*``)."""
    party2 = proxy.close()
    return time.perf_counter() - started, proxy.session_traffic(), party2


def apply_transform(transform: sitk.Transform, moving: Image, reference: Grid, order: int = 1) -> Image:
    """Resample ``moving`` onto ``reference`` through ``transform`` (fixed → moving points)."""
    values = resample(moving, mapped_points(transform, reference), order=order, default=0.0)
    return Image(array=values.reshape(reference.shape), grid=reference)


def transform_difference(
    transform_a: sitk.Transform, transform_b: sitk.Transform, reference: Grid, mask: np.ndarray | None = None
) -> dict:
    """RMSE and max (mm) of ‖A(x) − B(x)‖ over the reference grid (inside ``mask``)."""
    difference = np.linalg.norm(mapped_points(transform_a, reference) - mapped_points(transform_b, reference), axis=1)
    if mask is not None:
        if mask.shape != reference.shape:
            raise InputError(f"mask shape {mask.shape} differs from the reference image {reference.shape}")
        difference = difference[mask.ravel() > 0]
        if difference.size == 0:
            raise InputError("the mask is empty")
    return {
        "rmse_mm": float(np.sqrt(np.mean(difference**2))),
        "max_mm": float(np.max(difference)),
        "mean_mm": float(np.mean(difference)),
        "voxels": int(difference.size),
    }


def read_mask(path: str | Path | None, reference: Grid) -> np.ndarray | None:
    if path is None:
        return None
    mask = read_image(path, expect_dim=reference.dim)
    if mask.grid.shape != reference.shape:
        raise InputError(f"mask {path} has shape {mask.grid.shape}, the reference image {reference.shape}")
    return mask.array > 0


def registration_report(
    outcome: "AffineOutcome", model: str, moving: Image, moving_path, fixed_path, accuracy: dict | None,
    outputs: dict, *, transform: dict, cost_name: str, privacy: dict,
) -> dict:
    """The report of an image registration run (schema 1, DESIGN.md §4 and docs/report.md)."""
    result, config = outcome.result, outcome.config
    iterations = [record for level in result.levels for record in level.iterations]
    iteration_sum = _sum_traffic([record.traffic for record in iterations])
    return {
        "model": model,
        "config": config_as_dict(config),
        "inputs": {
            "moving": image_description(moving_path, moving.grid),
            "fixed": image_description(fixed_path, outcome.fixed_grid),
        },
        "levels": [level.as_dict() for level in result.levels],
        "iterations_total": len(iterations),
        "similarity": {"cost": cost_name, "initial": result.metric_initial, "final": result.metric_final},
        "transform": transform,
        "time": {
            "wall_seconds": outcome.wall_seconds,
            "per_iteration_mean_seconds": float(np.mean([r.seconds for r in iterations])) if iterations else 0.0,
            "party2_busy_seconds": outcome.party2_report.get("busy_seconds"),
        },
        "communication": {
            "unit": "bytes",
            "per_iteration_mean": _mean_traffic([record.traffic for record in iterations]),
            "setup": _difference(outcome.total_traffic, iteration_sum),
            "total": outcome.total_traffic.as_dict(),
        },
        "privacy": privacy,
        "accuracy": accuracy,
        "outputs": outputs,
    }


def affine_report(
    outcome: "AffineOutcome", moving: Image, moving_path, fixed_path, accuracy: dict | None, outputs: dict
) -> dict:
    """The report of an affine run."""
    result, config = outcome.result, outcome.config
    matrix, translation = result.matrix_translation()
    transform = {"kind": config.transform, "matrix": matrix, "translation_mm": translation,
                 "center_mm": result.model.center, "parameters": result.params}
    cost_name = "mean squared difference" if config.metric == "ssd" else "negative mutual information"
    privacy = revealed_quantities(config.metric, config.pet, config.sampling, result, config.bins,
                                  outcome.reveal_noise)
    return registration_report(outcome, "affine", moving, moving_path, fixed_path, accuracy, outputs,
                               transform=transform, cost_name=cost_name, privacy=privacy)


def bspline_report(
    outcome: "AffineOutcome", moving: Image, moving_path, fixed_path, accuracy: dict | None, outputs: dict
) -> dict:
    """The report of a B-spline run."""
    result, config = outcome.result, outcome.config
    transform = {"kind": "bspline", "itk_class": "BSplineTransform (order 3)", "mesh_size": result.control.mesh_size,
                 "grid_spacing_mm": result.control.spacing, "parameters": result.n_parameters,
                 "initial_affine": None if result.initial.is_identity() else
                 {"matrix": result.initial.matrix, "translation_mm": result.initial.translation,
                  "center_mm": result.initial.center}}
    privacy = bspline_revealed(config.pet, config.sampling, result, outcome.reveal_noise)
    return registration_report(outcome, "bspline", moving, moving_path, fixed_path, accuracy, outputs,
                               transform=transform, cost_name="mean squared difference + λ·membrane energy",
                               privacy=privacy)


def _sum_traffic(items: list[Traffic]) -> Traffic:
    total = Traffic()
    for item in items:
        total.party1 += item.party1
        total.party2 += item.party2
        total.dealer += item.dealer
        total.rounds += item.rounds
    return total


def _mean_traffic(items: list[Traffic]) -> dict:
    if not items:
        return Traffic().as_dict()
    total = _sum_traffic(items).as_dict()
    return {key: value / len(items) for key, value in total.items()}


def _difference(total: Traffic, part: Traffic) -> dict:
    return {
        "party1": total.party1 - part.party1,
        "party2": total.party2 - part.party2,
        "dealer": total.dealer - part.dealer,
        "rounds": total.rounds - part.rounds,
    }


def write_affine_outputs(outcome: "AffineOutcome", *args, **options) -> dict:
    """Warped image, .tfm, report (and QC picture) of an affine run; all or nothing.
    Arguments as :func:`write_registration_outputs` after ``build_report``."""
    return write_registration_outputs(outcome, affine_report, *args, **options)


def write_bspline_outputs(outcome: "AffineOutcome", *args, **options) -> dict:
    """Warped image, .tfm (BSpline, or composite with the initial affine), report; all or
    nothing. Arguments as :func:`write_registration_outputs` after ``build_report``."""
    return write_registration_outputs(outcome, bspline_report, *args, **options)


def write_registration_outputs(
    outcome: "AffineOutcome", build_report, moving: Image, moving_path, fixed_path, prefix: str,
    reference_transform: str | None = None, mask_path: str | None = None,
    qc: bool = False, fixed: Image | None = None,
) -> dict:
    """Warped image, .tfm, report and (with ``qc``) the QC picture under ``prefix``; all
    or nothing. ``fixed`` is only for the QC picture: None where party1 does not hold it."""
    transform = outcome.sitk_transform()
    accuracy = None
    if reference_transform is not None:
        reference = read_transform(reference_transform)
        accuracy = {"reference_transform": str(reference_transform), "mask": mask_path,
                    **transform_difference(transform, reference, outcome.fixed_grid, read_mask(mask_path, outcome.fixed_grid))}
    warped = apply_transform(transform, moving, outcome.fixed_grid)
    paths = {
        "warped": warped_output_path(prefix, moving_path),
        "transform": Path(f"{prefix}transform.tfm"),
        "report": Path(f"{prefix}report.json"),
    }
    if qc:
        paths["qc"] = Path(f"{prefix}qc.png")
    outputs = {name: str(path) for name, path in paths.items()}
    report = build_report(outcome, moving, moving_path, fixed_path, accuracy, outputs)
    picture = qc_picture(warped, fixed, outcome.result.levels, report["similarity"]["cost"]) if qc else None
    if picture is not None:
        report["qc"] = qc_report_entry(picture, paths["qc"])
    with OutputSet() as files:
        write_image(warped, files.temp_path(paths["warped"]))
        write_transform(transform, files.temp_path(paths["transform"]))
        if picture is not None:
            write_png(picture.rgb, files.temp_path(paths["qc"]))
        write_report(report, files.temp_path(paths["report"]))
    return outputs
