"""Library entry points of point-set registration (``ppreg pointcloud``): run, report, write."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ppreg.api import close_session
from ppreg.io.outputs import OutputSet
from ppreg.io.points import PointSet, write_points
from ppreg.io.report import write_report
from ppreg.io.transforms import linear_to_sitk, similarity_to_sitk, write_transform
from ppreg.privacy import pointcloud_revealed
from ppreg.registration.pointcloud import PointcloudResult, register_pointcloud
from ppreg.secure.session import FixedPartyProxy, Traffic


@dataclass
class PointcloudOutcome:
    """A finished point-set registration as party1 sees it."""

    result: PointcloudResult
    pet: str
    scaling: bool
    seed: int
    wall_seconds: float
    total_traffic: Traffic
    party2_report: dict = field(default_factory=dict)

    def sitk_transform(self) -> sitk.Transform:
        """T(y) = c·R(y − ȳ) + ȳ + (x̄ − ȳ): centre ȳ, fixed → moving (ITK direction)."""
        result = self.result
        translation = result.moving_centroid - result.fixed_centroid
        if self.scaling:
            return similarity_to_sitk(result.rotation, result.scale, translation, result.fixed_centroid)
        return linear_to_sitk(result.rotation, translation, result.fixed_centroid, rigid=True)


def run_pointcloud(moving: PointSet, proxy: FixedPartyProxy, scaling: bool = False, seed: int = 0) -> PointcloudOutcome:
    """Register ``moving`` to party2's corresponding points behind ``proxy`` (any engine, any transport).

    The solution is closed-form: ``seed`` is only recorded (masks are always secret-random).
    """
    started = time.perf_counter()
    result = register_pointcloud(moving, proxy, scaling)
    return PointcloudOutcome(result, proxy.engine.name, scaling, seed, *close_session(proxy, started))


def rotation_degrees(rotation: np.ndarray) -> float:
    """Angle of a proper rotation (2D or 3D), in degrees."""
    if len(rotation) == 2:
        return float(np.degrees(np.arctan2(rotation[1, 0], rotation[0, 0])))
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))


def pointcloud_report(outcome: PointcloudOutcome, moving_path, fixed_label, outputs: dict) -> dict:
    """The report of a point-set run (schema 1, docs/report.md)."""
    result = outcome.result
    transform = outcome.sitk_transform()
    return {
        "model": "pointcloud",
        "config": {"pet": outcome.pet, "scaling": outcome.scaling, "seed": outcome.seed},
        "inputs": {
            "moving": {"path": str(moving_path), "dim": result.dim, "points": result.count},
            "fixed": {"path": str(fixed_label), "dim": result.dim, "points": result.count},
        },
        "transform": {
            "kind": "similarity" if outcome.scaling else "rigid",
            "direction": "fixed to moving (ITK)",
            "rotation": result.rotation,
            "rotation_degrees": rotation_degrees(result.rotation),
            "scale": result.scale,
            "matrix": np.asarray(transform.GetMatrix()).reshape(result.dim, result.dim),
            "translation_mm": np.asarray(transform.GetTranslation()),
            "center_mm": np.asarray(transform.GetCenter()),
        },
        "accuracy": {"fre_mm": result.fre_mm(), "points": result.count},
        "time": {"wall_seconds": outcome.wall_seconds, "party2_busy_seconds": outcome.party2_report.get("busy_seconds")},
        "communication": {"unit": "bytes", "total": outcome.total_traffic.as_dict()},
        "privacy": pointcloud_revealed(outcome.pet, result.dim, result.count),
        "outputs": outputs,
    }


def write_pointcloud_outputs(outcome: PointcloudOutcome, moving: PointSet, moving_path, fixed_label, prefix: str) -> dict:
    """Transform, moving points mapped into fixed space, and report under ``prefix``; all or nothing."""
    paths = {
        "transform": Path(f"{prefix}transform.tfm"),
        "transformed": Path(f"{prefix}transformed.csv"),
        "report": Path(f"{prefix}report.json"),
    }
    outputs = {name: str(path) for name, path in paths.items()}
    with OutputSet() as files:
        write_transform(outcome.sitk_transform(), files.temp_path(paths["transform"]))
        write_points(outcome.result.moving_to_fixed(moving.points), files.temp_path(paths["transformed"]))
        write_report(pointcloud_report(outcome, moving_path, fixed_label, outputs), files.temp_path(paths["report"]))
    return outputs
