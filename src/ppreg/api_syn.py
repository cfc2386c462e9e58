"""Library entry points of ``ppreg ants``: run SyN, describe what was revealed, write outputs."""

from __future__ import annotations

import time
from pathlib import Path

import SimpleITK as sitk

from ppreg.api import AffineOutcome, apply_transform, close_session, read_mask, registration_report, transform_difference
from ppreg.config import AntsConfig
from ppreg.core.displacement import to_sitk
from ppreg.io.images import Image, warped_output_path, write_image
from ppreg.io.outputs import OutputSet
from ppreg.io.report import write_report
from ppreg.io.transforms import read_linear_transform, read_transform
from ppreg.privacy import THREAT_MODEL
from ppreg.qc import qc_picture, qc_report_entry, write_png
from ppreg.registration.affine import IterationCallback
from ppreg.registration.syn import SynResult, SynSettings, register_syn
from ppreg.secure.cc import check_syn_pet
from ppreg.secure.session import FixedPartyProxy
from ppreg.similarity.cc import METRIC_NAME



class SynOutcome(AffineOutcome):
    """A finished SyN registration as party1 sees it (``result`` a SynResult, ``config`` an
    AntsConfig; SyN has no --reveal-noise, so ``reveal_noise`` stays 0)."""


def syn_settings(config: AntsConfig, dim: int, initial_transform: str | None) -> SynSettings:
    initial = None if initial_transform is None else read_linear_transform(initial_transform, dim)
    return SynSettings(levels=config.schedule(), radius=config.radius, step=config.step,
                       sigma_update=config.smoothing_update, sigma_total=config.smoothing_total,
                       convergence=config.convergence, initial=initial)


def run_ants(moving: Image, proxy: FixedPartyProxy, config: AntsConfig, initial_transform: str | None = None,
             on_iteration: IterationCallback | None = None) -> SynOutcome:
    """Symmetric SyN of ``moving`` with the fixed image behind ``proxy`` (clear or mpc)."""
    check_syn_pet(config.pet)
    settings = syn_settings(config, moving.dim, initial_transform)
    started = time.perf_counter()
    result = register_syn(moving, proxy, settings, on_iteration)
    return SynOutcome(result, config, proxy.fixed_grid, *close_session(proxy, started))


def syn_revealed(pet: str, result: SynResult) -> dict:
    """What each party learns in a SyN run (docs/privacy.md, ``ppreg ants``)."""
    iterations = sum(len(level.iterations) for level in result.levels)
    field_values = sum(level.n_samples * len(level.iterations) for level in result.levels)
    own_side = {
        "per_iteration": ["its own CC force factor r at every voxel of the level grid (r1 = c·Ĵ − c²·Î for "
                          "party1, r2 = c·Î − c²·Ĵ for party2)", "mean local CC² over the grid (1 value)"] +
                         (["the joint support S: the voxels where both windows are non-flat (1 bit per voxel; "
                           "r = 0 off S)"] if pet == "mpc" else []),
        "values_per_iteration": [level.revealed_per_evaluation for level in result.levels],
        "values_total": field_values + iterations,
        "fixed_grid_geometry": True,
    }
    to_party1 = {**own_side, "at_the_end": "party2's displacement field u2 and its inverse on the fixed grid "
                                          "(with party1's own map they make the output transform)"}
    to_party2 = {**own_side, "level_parameters": "shrink, σ, radius, step, σ_update, σ_total per level"}
    if pet == "clear":
        leak = "the other party's warped image and its local statistics at every iteration (clear engine: no privacy)"
        to_party1["clear_engine"] = to_party2["clear_engine"] = leak
    else:
        to_party1["engine_messages"] = to_party2["engine_messages"] = \
            ("uniformly random masked values per iteration: 2 bits per voxel, 1 ring element per voxel of S⁺ "
             "(S dilated by the window) and 7 per voxel of S")
    to_party1["reveal_noise"] = {"sigma": 0.0, "applies_to": "nothing (--reveal-noise is refused for ants)"}
    dealer = {"present": pet == "mpc",
              "sees": "the level grid shape, the window radius, the level's iteration count and the iteration "
                      "counter; never data" if pet == "mpc" else "no dealer in this engine"}
    return {"threat_model": THREAT_MODEL, "revealed_to_party1": to_party1, "revealed_to_party2": to_party2,
            "revealed_to_dealer": dealer, "force_values_discarded": result.discarded_voxels}


def ants_report(outcome: SynOutcome, moving: Image, moving_path, fixed_path, accuracy: dict | None,
                outputs: dict) -> dict:
    """The report of a SyN run (schema 1; docs/report.md)."""
    result, config = outcome.result, outcome.config
    transform = {
        "kind": "syn", "itk_class": "DisplacementFieldTransform", "warp": outputs.get("warp"),
        "inverse_warp": outputs.get("inverse_warp"),
        "apply": "initial affine (if any) then warp, ITK order: ppreg apply AFFINE WARP MOVING -r FIXED",
        "inverse_consistency_residual_vox": result.inverse_residual_vox,
        "initial_affine": None if result.initial.is_identity() else
        {"matrix": result.initial.matrix, "translation_mm": result.initial.translation,
         "center_mm": result.initial.center},
    }
    return registration_report(outcome, "ants", moving, moving_path, fixed_path, accuracy, outputs,
                               transform=transform, cost_name=METRIC_NAME, privacy=syn_revealed(config.pet, result))


def write_ants_outputs(outcome: SynOutcome, moving: Image, moving_path, fixed_path, prefix: str,
                       reference_transform: str | None = None, mask_path: str | None = None,
                       qc: bool = False, fixed: Image | None = None) -> dict:
    """PREFIXwarp.nii.gz, PREFIXinverse_warp.nii.gz (ITK displacement fields, without the
    initial affine, as ANTs), the warped image and the report; all or nothing."""
    result, grid = outcome.result, outcome.fixed_grid
    transform = outcome.sitk_transform()
    accuracy = None
    if reference_transform is not None:
        reference = read_transform(reference_transform)
        accuracy = {"reference_transform": str(reference_transform), "mask": mask_path,
                    **transform_difference(transform, reference, grid, read_mask(mask_path, grid))}
    warped = apply_transform(transform, moving, grid)
    paths = {"warped": warped_output_path(prefix, moving_path), "warp": Path(f"{prefix}warp.nii.gz"),
             "inverse_warp": Path(f"{prefix}inverse_warp.nii.gz"), "report": Path(f"{prefix}report.json")}
    if qc:
        paths["qc"] = Path(f"{prefix}qc.png")
    outputs = {name: str(path) for name, path in paths.items()}
    report = ants_report(outcome, moving, moving_path, fixed_path, accuracy, outputs)
    picture = qc_picture(warped, fixed, result.levels, report["similarity"]["cost"]) if qc else None
    if picture is not None:
        report["qc"] = qc_report_entry(picture, paths["qc"])
    with OutputSet() as files:
        write_image(warped, files.temp_path(paths["warped"]))
        sitk.WriteImage(to_sitk(result.warp, grid), str(files.temp_path(paths["warp"])))
        sitk.WriteImage(to_sitk(result.inverse_warp, grid), str(files.temp_path(paths["inverse_warp"])))
        if picture is not None:
            write_png(picture.rgb, files.temp_path(paths["qc"]))
        write_report(report, files.temp_path(paths["report"]))
    return outputs
