"""What every command shares: error handling, exit codes, progress display."""

from __future__ import annotations

import functools
import os
import sys
from enum import Enum

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ppreg.errors import PpregError

stderr = Console(stderr=True)


class Pet(str, Enum):
    clear = "clear"
    mpc = "mpc"
    fhe1 = "fhe1"
    fhe2 = "fhe2"


class Sampling(str, Enum):
    all = "all"
    urs = "urs"
    gms = "gms"


class TransformKind(str, Enum):
    rigid = "rigid"
    affine = "affine"


class Metric(str, Enum):
    ssd = "ssd"
    mi = "mi"


def fail(message: str, code: int) -> None:
    """Print one line on stderr and exit with ``code``."""
    typer.echo(f"ppreg: error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(command):
    """Turn ppreg's typed errors into one stderr line and the documented exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except PpregError as error:
            fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:  # last resort: one line, exit 1, traceback on request
            if os.environ.get("PPREG_DEBUG"):
                raise
            fail(f"internal error: {type(error).__name__}: {error} (set PPREG_DEBUG=1 for a traceback)", 1)

    return wrapper


def enum_value(value):
    return None if value is None else value.value


class IterationProgress:
    """A rich progress bar over the iteration budget (silent with --quiet or no TTY)."""

    def __init__(self, total: int, quiet: bool):
        self.enabled = not quiet and sys.stderr.isatty()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[metric]}"), TimeElapsedColumn(), console=stderr, transient=False,
        ) if self.enabled else None
        self.total = total

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task("registering", total=self.total, metric="")
        return self

    def __call__(self, level, record) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=f"level {level.index + 1} (×{level.shrink})",
                                 metric=f"cost {record.metric:.6g}")

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=self.total)
            self.progress.stop()
