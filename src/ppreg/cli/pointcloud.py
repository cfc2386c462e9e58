"""The body of ``ppreg pointcloud``: load points, connect, register, write."""

from __future__ import annotations

from pathlib import Path

from ppreg.api_pointcloud import run_pointcloud, write_pointcloud_outputs
from ppreg.cli.run import Connection
from ppreg.errors import InputError
from ppreg.io.points import read_points
from ppreg.secure.engines import check_available
from ppreg.similarity.points import POINTS_METRIC


def run_pointcloud_command(moving_path: Path, fixed_path: Path | None, prefix: str, pet: str, scaling: bool,
                           seed: int, connection: Connection) -> dict:
    check_available(pet, POINTS_METRIC)
    moving = read_points(moving_path)
    if connection.peer is not None:
        if fixed_path is not None:
            raise InputError("give either FIXED or --peer, not both (party1 never holds the fixed points)")
        fixed = None
    elif fixed_path is None:
        raise InputError("missing FIXED point file (or --peer HOST:PORT for a remote party2)")
    else:
        fixed = read_points(fixed_path, expect_dim=moving.dim)
    with connection.session(fixed, pet) as proxy:
        outcome = run_pointcloud(moving, proxy, scaling, seed)
    fixed_label = fixed_path if fixed_path is not None else f"party2 at {connection.peer}"
    return write_pointcloud_outputs(outcome, moving, moving_path, fixed_label, prefix)
