"""Generated and hand-written docs stay in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

from ppreg import errors
from ppreg.cli.app import app
from ppreg.cli.docgen import render

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_up_to_date():
    committed = (ROOT / "docs" / "cli-reference.md").read_text()
    assert render(app) == committed, (
        "docs/cli-reference.md is stale: regenerate it with "
        "`.venv/bin/python -m ppreg.cli.docgen > docs/cli-reference.md`")


def test_every_exit_code_is_in_the_cli_table():
    documented = set(re.findall(r"^\| (\d+) \|", (ROOT / "docs" / "cli.md").read_text(), flags=re.MULTILINE))
    codes = {str(value.exit_code) for value in vars(errors).values()
             if isinstance(value, type) and issubclass(value, errors.PpregError)}
    assert codes <= documented, f"exit codes missing from docs/cli.md: {sorted(codes - documented)}"


def test_readme_shows_the_committed_demo_qc_picture():
    assert "docs/images/demo_qc.png" in (ROOT / "README.md").read_text()
    assert (ROOT / "docs" / "images" / "demo_qc.png").is_file()
