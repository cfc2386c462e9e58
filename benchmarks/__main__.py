"""Command line of the benchmark harness: ``python -m benchmarks run [--quick] [--only NAME]``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from benchmarks import BENCHMARKS
from benchmarks.harness import RESULTS_MD, run_benchmarks

app = typer.Typer(add_completion=False, help="Run ppreg's benchmarks and regenerate benchmarks/RESULTS.md.")


@app.callback()
def main() -> None:
    """ppreg benchmarks."""


@app.command()
def run(
    quick: Annotated[bool, typer.Option("--quick", help="Smaller images and fewer iterations (about 3 minutes).")] = False,
    only: Annotated[
        list[str] | None, typer.Option("--only", help=f"Run only this benchmark (repeatable): {', '.join(BENCHMARKS)}.")
    ] = None,
) -> None:
    """Run the benchmarks, write benchmarks/results/NAME.json and regenerate RESULTS.md."""
    names = tuple(only) if only else BENCHMARKS
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        typer.echo(f"error: unknown benchmark {unknown[0]!r} (known: {', '.join(BENCHMARKS)})", err=True)
        raise typer.Exit(2)
    command = "python -m benchmarks " + " ".join(sys.argv[1:])
    for name, path, seconds in run_benchmarks(names, quick, command):
        typer.echo(f"{name}: {seconds:.1f} s -> {path}")
    typer.echo(f"regenerated {RESULTS_MD}")


if __name__ == "__main__":
    app(prog_name="python -m benchmarks")
