"""The body of the commands: load, connect, register, write, summarise."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import typer

from ppreg.api import read_mask, run_affine, run_bspline, write_affine_outputs, write_bspline_outputs
from ppreg.api_syn import run_ants, write_ants_outputs
from ppreg.cli.common import IterationProgress
from ppreg.config import AffineConfig, AntsConfig, BSplineConfig, load_config
from ppreg.errors import InputError
from ppreg.io.images import read_image
from ppreg.io.points import read_points
from ppreg.io.transforms import read_transform
from ppreg.secure.engines import PETS, check_available
from ppreg.secure.reveal_noise import check_reveal_noise
from ppreg.secure.runtime import in_process_session, remote_session, serve_dealer, serve_fixed
from ppreg.transport.tls import Identity, Listener


@dataclass(frozen=True)
class Connection:
    """Where party2 and the dealer are: in this process (peer None) or over TLS."""

    peer: str | None = None
    dealer: str | None = None
    certs: Path | None = None

    def session(self, fixed, pet: str):
        if self.peer is None:
            return in_process_session(fixed, pet)
        if self.certs is None:
            raise InputError("--peer needs --certs DIR (make one with: ppreg keys DIR)")
        return remote_session(self.peer, self.dealer, self.certs, pet)


def load_pair(moving_path: Path, fixed_path: Path | None, connection: Connection):
    """Party1's moving image and, in-process only, the fixed image."""
    moving = read_image(moving_path)
    if connection.peer is not None:
        if fixed_path is not None:
            raise InputError("give either FIXED or --peer, not both (party1 never holds the fixed image)")
        return moving, None
    if fixed_path is None:
        raise InputError("missing FIXED image (or --peer HOST:PORT for a remote party2)")
    return moving, read_image(fixed_path, expect_dim=moving.dim)


# model → (config class, run function, output writer)
IMAGE_MODELS = {
    "affine": (AffineConfig, run_affine, write_affine_outputs),
    "bspline": (BSplineConfig, run_bspline, write_bspline_outputs),
    "ants": (AntsConfig, run_ants, write_ants_outputs),
}


def run_registration_command(model: str, moving_path: Path, fixed_path: Path | None, prefix: str, config_path,
                             overrides: dict, initial_transform, reference_transform, mask, quiet: bool,
                             connection: Connection, qc: bool = False) -> dict:
    """Load, connect, register with ``model``, write all outputs (or none)."""
    config_class, run, write_outputs = IMAGE_MODELS[model]
    config = load_config(config_class, config_path, overrides)
    check_available(config.pet, getattr(config, "metric", model))  # affine names its metric; other models are theirs
    moving, fixed = load_pair(moving_path, fixed_path, connection)
    check_reference(reference_transform, mask, fixed)
    budget = sum(level.iterations for level in config.schedule())
    with IterationProgress(budget, quiet) as progress, connection.session(fixed, config.pet) as proxy:
        outcome = run(moving, proxy, config, initial_transform, progress)
    fixed_label = fixed_path if fixed_path is not None else f"party2 at {connection.peer}"
    return write_outputs(outcome, moving, moving_path, fixed_label, prefix, reference_transform, mask,
                         qc=qc, fixed=fixed)


def check_reference(reference_transform, mask, fixed) -> None:
    """Refuse a bad --reference-transform/--mask before the run, not after it."""
    if mask is not None and reference_transform is None:
        raise InputError("--mask restricts the accuracy against --reference-transform; give both or neither")
    if reference_transform is not None:
        read_transform(reference_transform)
    if mask is not None:
        if fixed is not None:
            read_mask(mask, fixed.grid)
        else:  # with --peer the fixed grid is party2's: its shape is checked after the run
            read_image(mask)


def run_affine_command(*args, **kwargs) -> dict:
    return run_registration_command("affine", *args, **kwargs)


def _session_printer(role: str, quiet: bool):
    def report(number: int, summary: dict | None, error) -> None:
        if quiet:
            return
        if error is not None:
            typer.echo(f"ppreg {role}: session {number} failed: {error}", err=True)
        else:
            typer.echo(json.dumps({"role": role, "session": number, **summary}))
    return report


def _pet_list(text: str) -> tuple[str, ...]:
    pets = tuple(p.strip() for p in text.split(",") if p.strip())
    for pet in pets:
        if pet not in PETS:
            raise InputError(f"--pets: unknown engine {pet!r} (known: {', '.join(PETS)})")
    return pets


def serve_command(fixed_path: Path, listen: str, certs: Path, dealer: str | None, pets: str,
                  sessions: int | None, quiet: bool, reveal_noise: float = 0.0) -> None:
    reveal_noise = check_reveal_noise(reveal_noise)
    fixed = read_points(fixed_path) if fixed_path.suffix.lower() == ".csv" else read_image(fixed_path)
    available = []
    for pet in _pet_list(pets):
        with contextlib.suppress(InputError):
            check_available(pet)
            available.append(pet)
    if not available:
        raise InputError(f"none of --pets {pets} is available in this version")
    with Listener(listen, Identity.load(certs, "party2")) as listener:
        if not quiet:
            typer.echo(f"party2 serving {fixed_path} on port {listener.port} ({', '.join(available)})", err=True)
        serve_fixed(fixed, listener, certs, dealer, tuple(available), _session_printer("party2", quiet), sessions,
                    reveal_noise)


def dealer_serve_command(listen: str, certs: Path, sessions: int | None, quiet: bool) -> None:
    with Listener(listen, Identity.load(certs, "dealer")) as listener:
        if not quiet:
            typer.echo(f"dealer listening on port {listener.port}", err=True)
        serve_dealer(listener, _session_printer("dealer", quiet), sessions)
