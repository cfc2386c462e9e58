"""Command line of the benchmark harness: ``python -m benchmarks run|render``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from benchmarks import BENCHMARKS
from benchmarks.harness import render as render_results_md
from benchmarks.harness import run_benchmarks

app = typer.Typer(add_completion=False, help="Run ppreg's benchmarks and regenerate benchmarks/RESULTS.md.")

ResultsDir = Annotated[
    Path | None,
    typer.Option("--results-dir", file_okay=False,
                 help="Write NAME.json, figures and RESULTS.md into this folder "
                      "(default: benchmarks/results, with RESULTS.md in benchmarks/)."),
]


@app.callback()
def main() -> None:
    """ppreg benchmarks."""


@app.command()
def run(
    quick: Annotated[bool, typer.Option("--quick", help="Smaller images and fewer iterations (about 3 minutes).")] = False,
    only: Annotated[
        list[str] | None, typer.Option("--only", help=f"Run only this benchmark (repeatable): {', '.join(BENCHMARKS)}.")
    ] = None,
    results_dir: ResultsDir = None,
) -> None:
    """Run the benchmarks, write NAME.json per benchmark and regenerate RESULTS.md."""
    names = tuple(only) if only else BENCHMARKS
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        typer.echo(f"error: unknown benchmark {unknown[0]!r} (known: {', '.join(BENCHMARKS)})", err=True)
        raise typer.Exit(2)
    command = "python -m benchmarks " + " ".join(sys.argv[1:])
    total = 0.0
    for name, path, seconds in run_benchmarks(names, quick, command, results_dir):
        total += seconds
        typer.echo(f"{name}: {seconds:.1f} s -> {path}")
    typer.echo(f"total {total:.1f} s; regenerated {render_results_md(results_dir)}")


@app.command()
def render(results_dir: ResultsDir = None) -> None:
    """Regenerate RESULTS.md and redraw the figures from the results JSON already present (runs no benchmark)."""
    typer.echo(f"regenerated {render_results_md(results_dir, redraw=True)}")


if __name__ == "__main__":
    app(prog_name="python -m benchmarks")
