"""`python -m benchmarks run --quick` end to end, so the harness cannot rot (issue 9).

One real subprocess runs every benchmark in quick mode into a temporary folder (the
committed results are untouched); the checks read what it wrote.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import BENCHMARKS
from benchmarks.paper import ROWS
from benchmarks.paper_comparison import NOT_MEASURED, comparison_table, unsupported_reason

ROOT = Path(__file__).resolve().parents[1]
QUICK_TIMEOUT = 600
RENDERED_KEYS = ("benchmark", "title", "summary", "tables", "quick", "command", "date", "duration_seconds", "machine")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("quick_results")
    completed = subprocess.run([sys.executable, "-m", "benchmarks", "run", "--quick", "--results-dir", str(folder)],
                               cwd=ROOT, capture_output=True, text=True, timeout=QUICK_TIMEOUT)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return folder


def _results(folder: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in folder.glob("*.json")}


def test_every_benchmark_writes_the_keys_results_md_needs(quick_run):
    results = _results(quick_run)
    assert set(results) == set(BENCHMARKS)
    for name, result in results.items():
        missing = [key for key in RENDERED_KEYS if key not in result]
        assert not missing, f"{name}.json lacks {missing}"
        assert result["benchmark"] == name and result["quick"] is True
        assert result["duration_seconds"] > 0
        for table in result["tables"]:
            assert table["title"] and table["columns"]
            assert all(len(row) == len(table["columns"]) for row in table["rows"]), table["title"]


def test_results_md_holds_every_table_title_and_duration(quick_run):
    text = (quick_run / "RESULTS.md").read_text()
    for name, result in _results(quick_run).items():
        assert f"(`{name}`)" in text
        assert f"- `{name}` (quick): {result['duration_seconds']:.1f} s" in text
        for table in result["tables"]:
            assert f"### {table['title']}" in text
    assert "- total: " in text and "## Paper comparison" in text


def test_every_measured_paper_row_has_its_ratios(quick_run):
    rows = comparison_table(list(_results(quick_run).values()))["data"]
    assert [tuple(row["key"]) for row in rows] == [paper.key for paper in ROWS]
    for row, paper in zip(rows, ROWS):
        if paper.key in NOT_MEASURED:
            assert not row["measured"] and row["cells"][-1] == NOT_MEASURED[paper.key]
            continue
        refused = unsupported_reason(paper)
        if refused is not None:  # an engine that refuses the model by design (fhe1 and the B-spline)
            assert not row["measured"] and row["cells"][-1] == refused and refused.startswith("not supported: ")
            continue
        assert row["measured"], f"no benchmark measured {paper.table} {paper.label}"
        if not row["comparable"]:
            continue  # the paper's clear rows: 0.0 s and no bytes
        assert row["time_ratio"] is not None, f"{paper.table} {paper.label}: no time ratio"
        if paper.mb_party1 is not None:
            assert row["party1_ratio"] is not None and row["party2_ratio"] is not None, paper.label
        ratios = [r for r in (row["time_ratio"], row["party1_ratio"], row["party2_ratio"]) if r is not None]
        assert ("loses" in row["mark"]) == (min(ratios) < 1), (paper.label, row["mark"])


def test_the_comparison_table_in_results_md_has_a_row_per_paper_row(quick_run):
    text = (quick_run / "RESULTS.md").read_text()
    section = text.split("## Paper comparison", 1)[1].split("\n## ", 1)[0]
    table_rows = [line for line in section.splitlines() if re.match(r"\| Table (\d|A1) \|", line)]
    assert len(table_rows) == len(ROWS)


def test_memory_pass_reports_a_peak_for_every_party_process(quick_run):
    memory = _results(quick_run)["memory"]
    for run in memory["runs"]:
        expected = ("party1", "party2", "dealer") if "mpc" in run["options"] else ("party1", "party2")
        for party in expected:
            assert run["peak_mb"][party] > memory["floor_mb"] * 0.5, (run["name"], party)


def test_scaling_fits_a_slope_per_engine(quick_run):
    scaling = _results(quick_run)["scaling"]
    for pet in scaling["engines"]:
        fits = scaling["slopes"]["2D"][pet]
        assert fits and fits["seconds"] is not None
    assert 0.8 < scaling["slopes"]["2D"]["mpc"]["bytes_party1"] < 1.2  # party1 sends N masked values
