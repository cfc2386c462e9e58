"""Greedy symmetric SyN with local CC (``ppreg ants``): party1's driver and party2's loop.

Both images are warped to the midpoint grid (the fixed grid, shrunk per level), each by
its owner's map (:mod:`ppreg.registration.syn_half`). party1 leads:

party1                                        party2
  hello {model "ants"}                  →
  syn_level {public level parameters}   →     starts its level
  syn_iterate {level, iteration}        →     warps J by φ2, local statistics
  (CC engine messages: each side gets its own force factor and the metric)
                                              updates φ2 ← φ2∘(Id + v2)
  syn_finish                            →
                                        ←     syn_fields {u2, u2⁻¹ on the fixed grid}
  bye                                   →
                                        ←     bye {party2's traffic and time}

The result maps fixed points to moving points: T = φ1∘φ2⁻¹, i.e. T(x) = L(x + w(x)) with
w(x) = u2⁻¹(x) + u1(x + u2⁻¹(x)) (the warp) and w⁻¹(y) = u1⁻¹(y) + u2(y + u1⁻¹(y)).
party2's fields at the end are the output's own ingredients: T and φ1 give φ2⁻¹ anyway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ppreg.core.displacement import compose, to_transform
from ppreg.core.pyramid import LevelSpec
from ppreg.errors import EngineUnavailableError, ProtocolError
from ppreg.io.images import Grid, Image
from ppreg.registration.affine import IterationCallback
from ppreg.registration.bspline import LinearMap
from ppreg.registration.history import LevelHistory, IterationRecord, LevelRecord
from ppreg.registration.syn_half import SynHalf, SynLevel
from ppreg.secure.cc import PARTY1, PARTY2, cc_joint_for
from ppreg.secure.session import FixedPartyProxy, traffic_between
from ppreg.similarity.base import normalize_intensity
from ppreg.transport.channel import Channel

SYN_MODEL = "ants"


@dataclass(frozen=True)
class SynSettings:
    """party1's choices: window radius r (window (2r+1)^d), step (voxels per iteration),
    σ_update and σ_total (voxels of the level grid), convergence threshold on the slope
    of the cost over the last ``window`` iterations (ANTs ``-c [N, 1e-6, 10]``)."""

    levels: tuple[LevelSpec, ...]
    radius: int = 2
    step: float = 0.25
    sigma_update: float = 1.732
    sigma_total: float = 0.0
    convergence: float = 1e-6
    window: int = 10
    initial: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def level(self, index: int) -> SynLevel:
        spec = self.levels[index]
        return SynLevel(index, spec.shrink, spec.sigma, self.radius, self.step, self.sigma_update, self.sigma_total)


@dataclass
class SynResult(LevelHistory):
    """T(x) = L(x + w(x)) from the fixed grid to moving space, and the inverse warp."""

    warp: np.ndarray  # w, fixed grid shape + (d,), mm
    inverse_warp: np.ndarray  # w⁻¹
    grid: Grid
    initial: LinearMap
    levels: list[LevelRecord] = field(default_factory=list)
    inverse_residual_vox: float = 0.0
    discarded_voxels: int = 0  # revealed force values dropped by the |r| ≤ 2 check

    def warp_transform(self) -> sitk.DisplacementFieldTransform:
        return to_transform(self.warp, self.grid)

    def sitk_transform(self) -> sitk.Transform:
        """The warp alone, or the composite [initial affine, warp] (ITK applies the warp first)."""
        return self.initial.after(self.warp_transform())


def register_syn(moving: Image, proxy: FixedPartyProxy, settings: SynSettings,
                 on_iteration: IterationCallback | None = None) -> SynResult:
    """Register ``moving`` (party1's) with party2's fixed image by symmetric SyN."""
    fixed_grid = proxy.hello(moving.dim, SYN_MODEL)
    initial = LinearMap.identity(moving.dim) if settings.initial is None else LinearMap(*settings.initial)
    half = SynHalf(Image(array=normalize_intensity(moving.array)[0], grid=moving.grid), fixed_grid, initial)
    joint = cc_joint_for(proxy.engine, PARTY1, proxy.channel)
    levels, discarded = [], 0
    for index in range(len(settings.levels)):
        record, dropped = _run_level(half, joint, proxy, settings, index, on_iteration)
        levels.append(record)
        discarded += dropped
    own, own_inverse, residual = half.final_fields()
    proxy.channel.send("syn_finish")
    fields = proxy.channel.recv("syn_fields")
    peer, peer_inverse = (_checked_field(fields, name, own.shape) for name in ("field", "inverse"))
    warp = compose(own, peer_inverse, fixed_grid)
    inverse_warp = compose(peer, own_inverse, fixed_grid)
    residual = max(residual, float(fields.meta.get("residual_vox", 0.0)))
    return SynResult(warp, inverse_warp, fixed_grid, initial, levels, residual, discarded)


def _run_level(half: SynHalf, joint, proxy: FixedPartyProxy, settings: SynSettings, index: int,
               on_iteration: IterationCallback | None) -> tuple[LevelRecord, int]:
    started, before = time.perf_counter(), proxy.snapshot()
    level = settings.level(index)
    proxy.channel.send("syn_level", level.to_meta())
    grid = half.start_level(level)
    joint.start_level(index, grid.shape, level.radius, settings.levels[index].iterations)
    record = LevelRecord(index, level.shrink, level.sigma, grid.n_voxels, time.perf_counter() - started,
                         traffic_between(proxy.snapshot(), before), revealed_per_evaluation=grid.n_voxels + 1)
    discarded = 0
    for iteration in range(settings.levels[index].iterations):
        started, before = time.perf_counter(), proxy.snapshot()
        proxy.channel.send("syn_iterate", {"level": index, "iteration": iteration})
        forces = joint.forces(half.statistics())
        half.update(forces)
        discarded += forces.discarded
        step = IterationRecord(index, -forces.metric, time.perf_counter() - started,
                               traffic_between(proxy.snapshot(), before))
        record.iterations.append(step)
        if on_iteration is not None:
            on_iteration(record, step)
        if converged([r.metric for r in record.iterations], settings.convergence, settings.window):
            break
    half.end_level()
    return record, discarded


def converged(costs: list[float], threshold: float, window: int) -> bool:
    """ANTs' test: the slope of a line fitted to the last ``window`` costs, relative to
    their mean magnitude, is no longer below −threshold (the cost stopped falling).
    A threshold of 0 turns the test off: every level runs all its iterations."""
    recent = np.asarray(costs[-window:], dtype=np.float64)
    if threshold <= 0 or len(recent) < window or not np.all(np.isfinite(recent)):
        return False
    slope = np.polyfit(np.arange(window), recent, 1)[0]
    scale = max(float(np.mean(np.abs(recent))), 1e-12)
    return slope / scale > -threshold


def _checked_field(message, name: str, shape: tuple[int, ...]) -> np.ndarray:
    values = np.asarray(message.arrays.get(name), dtype=np.float64)
    if values.shape != shape or not np.all(np.isfinite(values)):
        raise ProtocolError(f"party2 sent a {name} of shape {values.shape}, expected {shape}")
    return values


def serve_syn(fixed: Image, channel: Channel, engine) -> float:
    """party2's side of one SyN session, after the hello; returns its busy seconds.

    Ends when party1 says bye (answered by the caller)."""
    if getattr(engine, "reveal_noise", 0.0) > 0:
        raise EngineUnavailableError("--reveal-noise is not available for ppreg ants: its revealed force "
                                     "fields would go out without the noise")
    half = SynHalf(fixed, fixed.grid)
    joint = cc_joint_for(engine, PARTY2, channel)
    busy = 0.0
    while True:
        message = channel.recv()
        started = time.perf_counter()
        if message.kind == "bye":
            return busy
        if message.kind == "syn_level":
            level = SynLevel.from_meta(message.meta)
            if level.index > 0 and half.grid is not None:
                half.end_level()
            grid = half.start_level(level)
            joint.start_level(level.index, grid.shape, level.radius)
        elif message.kind == "syn_iterate" and half.grid is not None:
            half.update(joint.forces(half.statistics()))
        elif message.kind == "syn_finish" and half.grid is not None:
            half.end_level()
            own, inverse, residual = half.final_fields()
            # float32: 10⁻⁷ relative (about 10⁻⁶ mm), half the bytes of the run's largest message
            channel.send("syn_fields", {"residual_vox": residual}, field=own.astype(np.float32),
                         inverse=inverse.astype(np.float32))
        else:
            raise ProtocolError(f"party2 got an unexpected {message.kind!r} message in a SyN session")
        busy += time.perf_counter() - started

