"""Write the command reference (docs/cli-reference.md) from the Typer app itself.

``python -m ppreg.cli.docgen > docs/cli-reference.md``; tests/test_docs.py fails when
the committed file differs from what this prints, so the reference cannot go stale.
"""

from __future__ import annotations

import inspect
from enum import Enum

import typer.main

HEADER = """# `ppreg` command reference

Generated from the command-line app by `python -m ppreg.cli.docgen > docs/cli-reference.md`;
do not edit by hand (tests/test_docs.py checks that it is up to date). Exit codes, examples
and the options in context: docs/cli.md. An empty default means the value comes from
`--config` or, without one, from the built-in defaults (the same as configs/MODEL.yaml).
"""


def render(app: typer.Typer, program: str = "ppreg") -> str:
    """Markdown for every command of ``app``: usage, help, arguments, options."""
    group = typer.main.get_command(app)
    root = group.make_context(program, [], resilient_parsing=True)
    sections = [HEADER, f"## `{program}`\n\n{_help_text(group.help)}\n", _options_table(group, root)]
    for name, command in group.commands.items():
        context = command.make_context(name, [], parent=root, resilient_parsing=True)
        sections.append(_command_section(program, name, command, context))
    return "\n".join(section for section in sections if section)


def _command_section(program: str, name: str, command, context) -> str:
    arguments = [param for param in command.params if param.param_type_name == "argument"]
    usage = " ".join([program, name, "[OPTIONS]", *(_argument_usage(param) for param in arguments)])
    if context.allow_extra_args:
        usage += " [PASSED-ON OPTIONS]..."
    lines = [f"## `{program} {name}`\n", f"`{usage}`\n", _help_text(command.help) + "\n"]
    if arguments:
        lines += ["| argument | required | help |", "|---|---|---|"]
        lines += [f"| `{param.name.upper()}` | {'yes' if param.required else 'no'} | {_cell(param.help)} |"
                  for param in arguments]
        lines.append("")
    lines.append(_options_table(command, context))
    return "\n".join(lines)


def _argument_usage(param) -> str:
    text = param.name.upper() + ("..." if param.nargs == -1 else "")
    return text if param.required else f"[{text}]"


def _options_table(command, context) -> str:
    options = [param for param in command.params if param.param_type_name == "option"]
    if not options:
        return ""
    rows = ["| option | type | default | help |", "|---|---|---|---|"]
    for param in options:
        names = ", ".join(f"`{name}`" for name in [*param.opts, *param.secondary_opts])
        default = "required" if param.required else _default(param)
        rows.append(f"| {names} | {_type_label(param, context)} | {default} | {_cell(param.help)} |")
    return "\n".join(rows) + "\n"


def _type_label(param, context) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    if hasattr(param, "display_type"):
        return _cell(param.display_type(context).strip("<>"))
    choices = getattr(param.type, "choices", None)
    return _cell("|".join(str(choice) for choice in choices) if choices else param.type.name)


def _default(param) -> str:
    value = param.default
    if getattr(param, "is_flag", False):
        return "on" if value else "off"
    if value is None or callable(value):
        return ""
    if isinstance(value, Enum):
        value = value.value
    return f"`{value}`"


def _help_text(text: str | None) -> str:
    """A docstring as Markdown paragraphs (hard line breaks inside a paragraph removed)."""
    paragraphs = inspect.cleandoc(text or "").split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in paragraph.splitlines()) for paragraph in paragraphs)


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def main() -> None:
    from ppreg.cli.app import app

    print(render(app), end="")


if __name__ == "__main__":
    main()
