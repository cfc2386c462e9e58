"""Settings: built-in defaults < YAML config < explicit command-line options.

Every key of a YAML config is also a command-line option (``sampling_fraction`` ↔
``--sampling-fraction``); unknown keys and badly typed values are errors.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import yaml

from ppreg.core.pyramid import LevelSpec, build_schedule
from ppreg.core.sampling import MODES
from ppreg.errors import ConfigError
from ppreg.secure.engines import PETS
from ppreg.secure.reveal_noise import check_reveal_noise


@dataclass(frozen=True)
class AffineConfig:
    """Settings of ``ppreg affine`` (configs/affine.yaml mirrors these defaults)."""

    transform: str = "affine"
    metric: str = "ssd"
    pet: str = "clear"
    sampling: str = "all"
    sampling_fraction: float = 0.1
    levels: str = "4x2x1"
    smoothing: str = "2x1x0"
    iterations: str = "100x50x25"
    bins: int = 32
    seed: int = 0
    convergence: float = 0.001
    reveal_noise: float = 0.0

    def schedule(self) -> tuple[LevelSpec, ...]:
        return tuple(build_schedule(self.levels, self.smoothing, self.iterations))

    def validate(self) -> "AffineConfig":
        _choice("transform", self.transform, ("rigid", "affine"))
        _choice("metric", self.metric, ("ssd", "mi"))
        if not 8 <= self.bins <= 256:
            raise ConfigError(f"bins must be between 8 and 256, got {self.bins}")
        _check_sampled_registration(self)
        return self


@dataclass(frozen=True)
class BSplineConfig:
    """Settings of ``ppreg bspline`` (configs/bspline.yaml mirrors these defaults).

    ``grid_spacing`` is the control-point spacing in mm at the finest level; 0 means
    5 voxels of the fixed image (the paper: a control point every 4–5 pixels).
    """

    pet: str = "clear"
    sampling: str = "all"
    sampling_fraction: float = 0.1
    levels: str = "4x2x1"
    smoothing: str = "2x1x0"
    iterations: str = "50x30x20"
    grid_spacing: float = 0.0
    regularization: float = 1e-4
    seed: int = 0
    convergence: float = 0.001
    reveal_noise: float = 0.0

    def schedule(self) -> tuple[LevelSpec, ...]:
        return tuple(build_schedule(self.levels, self.smoothing, self.iterations))

    def validate(self) -> "BSplineConfig":
        if self.grid_spacing < 0:
            raise ConfigError(f"grid_spacing must be ≥ 0 mm (0 = 5 voxels), got {self.grid_spacing}")
        if self.regularization < 0:
            raise ConfigError(f"regularization must be ≥ 0, got {self.regularization}")
        _check_sampled_registration(self)
        return self


@dataclass(frozen=True)
class AntsConfig:
    """Settings of ``ppreg ants`` (configs/ants.yaml mirrors these defaults): greedy
    symmetric SyN with local CC, as ``antsRegistration -t SyN[step, σ²_update, σ²_total]
    -m CC[..., r]`` but with σ's (not variances) in voxels of each level."""

    pet: str = "clear"
    levels: str = "4x2x1"
    smoothing: str = "2x1x0"
    iterations: str = "40x20x10"
    radius: int = 2
    step: float = 0.25
    smoothing_update: float = 1.732
    smoothing_total: float = 0.0
    convergence: float = 1e-6

    def schedule(self) -> tuple[LevelSpec, ...]:
        return tuple(build_schedule(self.levels, self.smoothing, self.iterations))

    def validate(self) -> "AntsConfig":
        _choice("pet", self.pet, ("clear", "mpc"))
        if not 1 <= self.radius <= 8:
            raise ConfigError(f"radius must be between 1 and 8 voxels, got {self.radius}")
        if not 0 < self.step <= 10:
            raise ConfigError(f"step must be in (0, 10] voxels, got {self.step}")
        if self.smoothing_update < 0 or self.smoothing_total < 0:
            raise ConfigError("smoothing_update and smoothing_total must be ≥ 0 voxels")
        if self.convergence < 0:
            raise ConfigError(f"convergence must be ≥ 0 (0 = run every iteration), got {self.convergence}")
        self.schedule()
        return self


def _check_sampled_registration(config) -> None:
    """Checks shared by the sampled image models (affine, bspline): engine, sampling,
    convergence, reveal noise and the pyramid schedule."""
    _choice("pet", config.pet, PETS)
    _choice("sampling", config.sampling, MODES)
    if not 0.0 < config.sampling_fraction <= 1.0:
        raise ConfigError(f"sampling_fraction must be in (0, 1], got {config.sampling_fraction}")
    if config.convergence <= 0:
        raise ConfigError(f"convergence must be positive, got {config.convergence}")
    check_reveal_noise(config.reveal_noise)
    config.schedule()


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")


def load_config(cls, path: str | os.PathLike | None, overrides: dict):
    """Defaults of ``cls``, updated by the YAML file at ``path``, then by ``overrides``.

    ``overrides`` holds command-line values; None means "not given".
    """
    values = {}
    if path is not None:
        values.update(_read_yaml(Path(path), cls))
    values.update({key: value for key, value in overrides.items() if value is not None})
    config = replace(cls(), **{key: _coerce(cls, key, value) for key, value in values.items()})
    return config.validate()


def _read_yaml(path: Path, cls) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return data


def _coerce(cls, key: str, value):
    kind = {f.name: f.type for f in fields(cls)}[key]
    target = {"str": str, "int": int, "float": float}.get(kind if isinstance(kind, str) else kind.__name__, str)
    if target is not str and isinstance(value, (bool, list, dict)):
        raise ConfigError(f"{key} must be {target.__name__}, got {value!r}")
    if target is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{key} must be an integer, got {value!r}")  # int() would silently drop the fraction
    try:
        return target(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be {target.__name__}, got {value!r}") from None


def config_as_dict(config) -> dict:
    return asdict(config)
