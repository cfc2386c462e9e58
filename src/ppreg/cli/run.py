"""The body of the registration commands: load, connect, register, write, summarise."""

from __future__ import annotations

from pathlib import Path

from ppreg.api import run_affine, write_affine_outputs
from ppreg.cli.common import IterationProgress
from ppreg.config import AffineConfig, load_config
from ppreg.errors import InputError
from ppreg.io.images import read_image
from ppreg.secure.engines import check_available
from ppreg.secure.runtime import in_process_session


def run_affine_command(moving_path: Path, fixed_path: Path | None, prefix: str, config_path, overrides: dict,
                       initial_transform, reference_transform, mask, quiet: bool) -> dict:
    config = load_config(AffineConfig, config_path, overrides)
    check_available(config.pet)
    moving = read_image(moving_path)
    if fixed_path is None:
        raise InputError("give the FIXED image (in-process run)")
    fixed = read_image(fixed_path, expect_dim=moving.dim)
    budget = sum(level.iterations for level in config.schedule())
    with IterationProgress(budget, quiet) as progress, in_process_session(fixed, config.pet) as proxy:
        outcome = run_affine(moving, proxy, config, initial_transform, progress)
    return write_affine_outputs(outcome, moving, moving_path, fixed_path, prefix, reference_transform, mask)
