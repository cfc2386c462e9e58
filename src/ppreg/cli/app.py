"""``ppreg``: privacy-preserving image registration from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ppreg import __version__
from ppreg.cli.batch_cmd import PASS_THROUGH, batch
from ppreg.cli.common import Metric, Pet, TransformKind, enum_value, handle_errors
from ppreg.cli.options import (
    AffineInitial,
    AffineIterations,
    AntsInitial,
    AntsIterations,
    BSplineInitial,
    BSplineIterations,
    PetClearOrMpc,
    PetOption,
    Certs,
    ConfigFile,
    Convergence,
    Dealer,
    FixedImage,
    Levels,
    MovingImage,
    OutputPrefix,
    Peer,
    QualityControl,
    Quiet,
    ReferenceMask,
    ReferenceTransform,
    RevealNoise,
    SamplingFraction,
    SamplingOption,
    Smoothing,
)
from ppreg.cli.report_cmd import report
from ppreg.errors import InputError

app = typer.Typer(
    name="ppreg",
    help="Privacy-preserving image registration (MPC and homomorphic encryption).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ppreg {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Privacy-preserving image registration. Exit codes: 0 ok, 1 internal error,
    2 bad input or usage, 3 peer/dealer/network failure, 4 some pairs of a batch failed."""


@app.command()
@handle_errors
def affine(
    moving: MovingImage,
    fixed: FixedImage = None,
    output: OutputPrefix = "ppreg_",
    transform: Annotated[Optional[TransformKind], typer.Option(help="Transform model.")] = None,
    metric: Annotated[Optional[Metric], typer.Option(help="Similarity: ssd or mi (Mattes).")] = None,
    pet: PetOption = None,
    sampling: SamplingOption = None,
    sampling_fraction: SamplingFraction = None,
    levels: Levels = None,
    smoothing: Smoothing = None,
    iterations: AffineIterations = None,
    bins: Annotated[Optional[int], typer.Option(help="MI histogram bins.")] = None,
    convergence: Convergence = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for sampling and optimisation.")] = None,
    reveal_noise: RevealNoise = None,
    config: ConfigFile = None,
    initial_transform: AffineInitial = None,
    reference_transform: ReferenceTransform = None,
    mask: ReferenceMask = None,
    peer: Peer = None,
    dealer: Dealer = None,
    certs: Certs = None,
    qc: QualityControl = False,
    quiet: Quiet = False,
) -> None:
    """Rigid or affine registration (SSD or MI) of MOVING onto FIXED (or onto party2's
    image with --peer)."""
    from ppreg.cli.run import Connection, run_affine_command

    overrides = dict(
        transform=enum_value(transform), metric=enum_value(metric), pet=enum_value(pet),
        sampling=enum_value(sampling), sampling_fraction=sampling_fraction, levels=levels, smoothing=smoothing,
        iterations=iterations, bins=bins, convergence=convergence, seed=seed, reveal_noise=reveal_noise,
    )
    connection = Connection(peer=peer, dealer=dealer, certs=certs)
    outputs = run_affine_command(moving, fixed, output, config, overrides, initial_transform, reference_transform,
                                 mask, quiet, connection, qc)
    if not quiet:
        typer.echo(json.dumps(outputs, indent=2))


@app.command()
@handle_errors
def pointcloud(
    moving: Annotated[Path, typer.Argument(help="Moving points (party1's), CSV x,y[,z] in mm, header optional.")],
    fixed: Annotated[Optional[Path], typer.Argument(help="Fixed points (party2's), rows corresponding to MOVING; "
                                                         "omit with --peer.")] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="Output prefix, like ANTs -o.")] = "ppreg_",
    pet: Annotated[Pet, typer.Option(help="Privacy engine.")] = Pet.clear,
    scaling: Annotated[bool, typer.Option("--scaling", help="Also fit an isotropic scale (Umeyama).")] = False,
    seed: Annotated[int, typer.Option(help="Recorded in the report (the fit is closed-form; masks are "
                                           "always secret-random).")] = 0,
    peer: Annotated[Optional[str], typer.Option(help="party2 (ppreg serve FIXED.csv) at HOST:PORT instead of FIXED.")] = None,
    dealer: Annotated[Optional[str], typer.Option(help="Dealer (ppreg dealer) at HOST:PORT, for --pet mpc.")] = None,
    certs: Annotated[Optional[Path], typer.Option(help="Certificates directory made by ppreg keys.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary.")] = False,
) -> None:
    """Rigid (or similarity) registration of corresponding landmarks: closed-form SVD
    (Arun/Kabsch) on the securely computed cross-covariance."""
    from ppreg.cli.pointcloud import run_pointcloud_command
    from ppreg.cli.run import Connection

    outputs = run_pointcloud_command(moving, fixed, output, pet.value, scaling, seed,
                                     Connection(peer=peer, dealer=dealer, certs=certs))
    if not quiet:
        typer.echo(json.dumps(outputs, indent=2))


@app.command()
@handle_errors
def bspline(
    moving: MovingImage,
    fixed: FixedImage = None,
    output: OutputPrefix = "ppreg_",
    grid_spacing: Annotated[Optional[float], typer.Option(help="Control-point spacing in mm at the finest "
                                                               "level (default: 5 voxels).")] = None,
    regularization: Annotated[Optional[float], typer.Option(help="Weight λ of the membrane energy.")] = None,
    pet: PetOption = None,
    sampling: SamplingOption = None,
    sampling_fraction: SamplingFraction = None,
    levels: Levels = None,
    smoothing: Smoothing = None,
    iterations: BSplineIterations = None,
    convergence: Convergence = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for sampling.")] = None,
    reveal_noise: RevealNoise = None,
    config: ConfigFile = None,
    initial_transform: BSplineInitial = None,
    reference_transform: ReferenceTransform = None,
    mask: ReferenceMask = None,
    peer: Peer = None,
    dealer: Dealer = None,
    certs: Certs = None,
    qc: QualityControl = False,
    quiet: Quiet = False,
) -> None:
    """Free-form deformation (cubic B-spline, SSD) of MOVING onto FIXED; writes an ITK
    BSplineTransform (composite with --initial-transform)."""
    from ppreg.cli.run import Connection, run_registration_command

    overrides = dict(
        pet=enum_value(pet), sampling=enum_value(sampling), sampling_fraction=sampling_fraction, levels=levels,
        smoothing=smoothing, iterations=iterations, grid_spacing=grid_spacing, regularization=regularization,
        convergence=convergence, seed=seed, reveal_noise=reveal_noise,
    )
    outputs = run_registration_command("bspline", moving, fixed, output, config, overrides, initial_transform,
                                       reference_transform, mask, quiet, Connection(peer, dealer, certs), qc)
    if not quiet:
        typer.echo(json.dumps(outputs, indent=2))


@app.command()
@handle_errors
def ants(
    moving: MovingImage,
    fixed: FixedImage = None,
    output: OutputPrefix = "ppreg_",
    radius: Annotated[Optional[int], typer.Option(help="Local CC window radius r: windows of (2r+1)^d voxels "
                                                       "(ANTs CC[..., r]).")] = None,
    step: Annotated[Optional[float], typer.Option(help="Largest update per iteration, in voxels (SyN gradient step).")] = None,
    smoothing_update: Annotated[Optional[float], typer.Option(help="Gaussian σ (voxels) of each update field.")] = None,
    smoothing_total: Annotated[Optional[float], typer.Option(help="Gaussian σ (voxels) of the total field; 0 = none.")] = None,
    pet: PetClearOrMpc = None,
    levels: Levels = None,
    smoothing: Smoothing = None,
    iterations: AntsIterations = None,
    convergence: Annotated[Optional[float], typer.Option(help="Stop a level when the cost's slope over the last 10 "
                                                              "iterations, relative, is above -this.")] = None,
    config: ConfigFile = None,
    initial_transform: AntsInitial = None,
    reference_transform: ReferenceTransform = None,
    mask: ReferenceMask = None,
    peer: Peer = None,
    dealer: Dealer = None,
    certs: Certs = None,
    qc: QualityControl = False,
    quiet: Quiet = False,
) -> None:
    """Greedy symmetric SyN with local CC (ANTs style) of MOVING and FIXED; writes
    PREFIXwarp.nii.gz and PREFIXinverse_warp.nii.gz (ITK displacement fields, without the
    initial affine), the warped image and the report."""
    from ppreg.cli.run import Connection, run_registration_command

    overrides = dict(
        pet=enum_value(pet), levels=levels, smoothing=smoothing, iterations=iterations, radius=radius, step=step,
        smoothing_update=smoothing_update, smoothing_total=smoothing_total, convergence=convergence,
    )
    outputs = run_registration_command("ants", moving, fixed, output, config, overrides, initial_transform,
                                       reference_transform, mask, quiet, Connection(peer, dealer, certs), qc)
    if not quiet:
        typer.echo(json.dumps(outputs, indent=2))


@app.command()
@handle_errors
def apply(
    transforms: Annotated[list[Path], typer.Argument(help="ITK transform files (.tfm/.txt/.h5, or a displacement "
                                                          "field image), in ITK order: e.g. an initial affine, "
                                                          "then ppreg ants' warp.nii.gz.")],
    moving: Annotated[Path, typer.Argument(help="Image to resample.")],
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Image whose grid the output takes.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output image path.")],
    interpolation: Annotated[str, typer.Option(help="linear, nearest (labels) or bspline.")] = "linear",
) -> None:
    """Resample MOVING onto the REFERENCE grid through TRANSFORMS (ITK direction; several
    files compose like an ITK CompositeTransform: the last is applied first to a point)."""
    from ppreg.api import apply_transform
    from ppreg.io.images import read_image, write_image
    from ppreg.io.transforms import read_transform_chain

    orders = {"linear": 1, "nearest": 0, "bspline": 3}
    if interpolation not in orders:
        raise InputError(f"--interpolation must be one of {', '.join(orders)}, got {interpolation!r}")
    reference_image = read_image(reference)
    moving_image = read_image(moving, expect_dim=reference_image.dim)
    warped = apply_transform(read_transform_chain(transforms), moving_image, reference_image.grid,
                             orders[interpolation])
    write_image(warped, output)


@app.command()
@handle_errors
def compare(
    transform_a: Annotated[Path, typer.Argument(help="First ITK transform.")],
    transform_b: Annotated[Path, typer.Argument(help="Second ITK transform.")],
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Image defining the grid of points.")],
    mask: Annotated[Optional[Path], typer.Option(help="Only voxels where this image is > 0.")] = None,
) -> None:
    """Displacement difference (mm) between two transforms over a reference grid, as JSON."""
    from ppreg.api import read_mask, transform_difference
    from ppreg.io.images import read_image
    from ppreg.io.transforms import read_transform

    grid = read_image(reference).grid
    result = transform_difference(read_transform(transform_a), read_transform(transform_b), grid,
                                  read_mask(mask, grid))
    typer.echo(json.dumps(result))


@app.command()
@handle_errors
def keys(
    directory: Annotated[Path, typer.Argument(help="Folder for ca.pem and NAME.pem / NAME.key.pem.")],
    names: Annotated[str, typer.Option(help="Comma-separated party names.")] = "party1,party2,dealer",
    hosts: Annotated[str, typer.Option(help="Comma-separated host names/IPs for the certificates.")] = "127.0.0.1,localhost",
    days: Annotated[int, typer.Option(help="Validity in days.")] = 825,
    overwrite: Annotated[bool, typer.Option(help="Replace existing files (and make a new CA).")] = False,
) -> None:
    """Make a small CA and a certificate + key per party for mutual TLS."""
    from ppreg.transport.keys import make_keys

    written = make_keys(directory, [n.strip() for n in names.split(",") if n.strip()], days,
                        [h.strip() for h in hosts.split(",") if h.strip()], overwrite=overwrite)
    typer.echo("\n".join(str(path) for path in written))


@app.command()
@handle_errors
def serve(
    fixed: Annotated[Path, typer.Argument(help="Fixed image (party2's own), or a .csv point file for pointcloud.")],
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on.")],
    certs: Annotated[Path, typer.Option(help="Certificates directory (party2.pem, ca.pem).")],
    dealer: Annotated[Optional[str], typer.Option(help="Dealer HOST:PORT (needed for --pet mpc).")] = None,
    pets: Annotated[str, typer.Option(help="Comma-separated engines party2 accepts.")] = "mpc,fhe1,fhe2",
    sessions: Annotated[Optional[int], typer.Option(help="Stop after this many sessions (default: serve forever).")] = None,
    reveal_noise: Annotated[float, typer.Option(help="Least σ of the noise added to every revealed joint term; "
                                                     "a client may ask for more (docs/privacy.md).")] = 0.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-session lines.")] = False,
) -> None:
    """party2: serve registrations against FIXED, one after another (never sends the image
    except to --pet clear clients, which must be allowed explicitly with --pets)."""
    from ppreg.cli.run import serve_command

    serve_command(fixed, listen, certs, dealer, pets, sessions, quiet, reveal_noise)


@app.command("dealer")
@handle_errors
def dealer_command(
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on.")],
    certs: Annotated[Path, typer.Option(help="Certificates directory (dealer.pem, ca.pem).")],
    sessions: Annotated[Optional[int], typer.Option(help="Stop after this many sessions (default: forever).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-session lines.")] = False,
) -> None:
    """The dealer (crypto provider): correlated randomness for --pet mpc; never sees data."""
    from ppreg.cli.run import dealer_serve_command

    dealer_serve_command(listen, certs, sessions, quiet)


app.command(context_settings=PASS_THROUGH)(handle_errors(batch))
app.command()(handle_errors(report))


def main() -> None:
    app()
