"""``ppreg batch``: register every pair of a manifest (see ppreg.batch)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ppreg.errors import BatchFailedError, InputError

try:
    from click import ClickException as ParseError
except ImportError:  # typer ≥ 0.22 vendors click and no longer installs it
    from typer.exceptions import TyperException as ParseError

# Options the batch sets per pair or that need a remote party2 (batch runs in-process).
RESERVED_OPTIONS = ("-o", "--output", "--reference-transform", "--peer", "--dealer", "--certs")
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


class Model(str, Enum):
    """Registration commands a batch can run (add a model here once its command exists)."""

    affine = "affine"
    bspline = "bspline"
    ants = "ants"
    pointcloud = "pointcloud"


def batch(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Argument(help="CSV with a header: moving,fixed[,id][,reference][,mask]; "
                                                  "relative paths are relative to the manifest.")],
    model: Annotated[Model, typer.Option(help="Registration command run for every pair.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder: pair ID writes OUTDIR/ID_* and "
                                                               "OUTDIR/summary.csv lists every pair.")],
    jobs: Annotated[int, typer.Option(min=1, help="Pairs registered at the same time, one process each.")] = 1,
    timeout: Annotated[Optional[float], typer.Option(help="Seconds after which a pair is stopped and marked "
                                                          "failed.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per pair.")] = False,
) -> None:
    """Register every MANIFEST pair with `ppreg MODEL`, each in its own process. Options
    batch does not know (--pet, --metric, --levels, --config, --qc, --mask, ...) are
    passed to every pair. Pairs whose report exists are skipped (re-run to resume).
    Exit codes: 0 every pair ok or skipped, 4 some pair failed, 2 bad manifest or options."""
    from ppreg.batch import FAILED, read_manifest, run_batch

    options = list(ctx.args)
    pairs = read_manifest(manifest)
    check_options(ctx, model.value, options, pairs)
    done = 0

    def show(result) -> None:
        nonlocal done
        done += 1
        if not quiet:
            detail = f": {result.error}" if result.status == FAILED else ""
            typer.echo(f"[{done}/{len(pairs)}] {result.pair.id} {result.status}{detail}", err=True)

    results = run_batch(pairs, model.value, output, options, jobs, timeout, show)
    summary = output / "summary.csv"
    counts = {status: sum(r.status == status for r in results) for status in ("ok", "skipped", "failed")}
    typer.echo(f"{summary}: " + ", ".join(f"{count} {status}" for status, count in counts.items()))
    if counts["failed"]:
        raise BatchFailedError(f"{counts['failed']} of {len(results)} pairs failed (see {summary})")


def check_options(ctx: typer.Context, model: str, options: list[str], pairs) -> None:
    """Refuse options the batch owns, then let ``ppreg MODEL`` parse the rest once, so a
    typo stops the batch before any pair runs (exit 2) instead of failing every pair."""
    columns = {"--reference-transform": any(pair.reference is not None for pair in pairs),
               "--mask": any(pair.mask is not None for pair in pairs)}
    for option in options:
        name = option.split("=", 1)[0]
        if name in RESERVED_OPTIONS:
            raise InputError(f"batch sets {name} itself (use -o OUTDIR and the manifest's reference column; "
                             "batch runs both parties in-process)")
        if name == "--mask" and columns["--mask"]:
            raise InputError("give --mask or a mask column in the manifest, not both")
    command = ctx.find_root().command.get_command(ctx, model)
    known = {name for param in command.params for name in param.opts}
    for option, used in columns.items():
        if used and option not in known:
            raise InputError(f"ppreg {model} has no {option}: remove that column from the manifest")
    try:
        command.make_context(model, ["MOVING", "FIXED", *options], parent=ctx.find_root())
    except ParseError as error:
        raise InputError(f"option for ppreg {model}: {error.format_message()}") from None
