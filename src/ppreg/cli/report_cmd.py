"""``ppreg report``: one table row per JSON report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

PIPE_WIDTH = 400  # a table piped to a file keeps one line per report


def report(
    reports: Annotated[list[Path], typer.Argument(help="PREFIXreport.json files (e.g. OUTDIR/*_report.json).")],
) -> None:
    """Summarise reports as a table: model, engine, metric, sampling, iterations,
    initial/final cost, accuracy RMSE, time and bytes per iteration per party."""
    from ppreg.io.report_summary import load_report, summary_fields

    rows = [(path, summary_fields(load_report(path))) for path in reports]
    table = Table(title=None, show_lines=False)
    table.add_column("report", no_wrap=True)
    for name in rows[0][1]:
        table.add_column(name, justify="left" if name in ("model", "pet", "metric", "sampling") else "right")
    for path, fields in rows:
        table.add_row(str(path), *fields.values())
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, PIPE_WIDTH))
    console.print(table)
