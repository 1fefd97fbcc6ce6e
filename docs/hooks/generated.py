"""MkDocs hook: pages generated from the code at build time, so they cannot drift from it.

- ``<!-- generated:cli -->``: every ``initlab`` command, from the typer app itself (usage, help,
  every option with its type and default), the same text ``initlab CMD --help`` prints.
- ``<!-- generated:catalog -->``: the initializer catalog, from ``initlab.initializers.catalog()``.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def _text(value: object) -> str:
    """Plain text safe inside Markdown: no HTML, no emphasis, no table breaks."""
    text = html.escape(str(value), quote=False)
    return re.sub(r"([*|\[\]])", r"\\\1", text)


def _unrich(text: str) -> str:
    """Help text as the terminal shows it: rich's escaped brackets ``\\[`` unescaped."""
    return " ".join(text.replace("\\[", "[").split())


def _command_md(cmd, path: list[str], parent=None) -> list[str]:
    """One section per command: usage, help, then a table of its arguments and options."""
    import typer

    ctx = typer.Context(cmd, info_name=path[-1], parent=parent)
    params = [p for p in cmd.params if not p.hidden]
    records = [p.get_help_record(ctx) for p in params]
    arguments = [r[0].split()[0].upper() for p, r in zip(params, records, strict=True)
                 if r and p.param_type_name == "argument"]
    group = ["COMMAND [ARGS]..."] if hasattr(cmd, "list_commands") else []
    usage = " ".join([*path, "[OPTIONS]", *arguments, *group])
    out = [f"## `{' '.join(path)}`", "", "```text", f"Usage: {usage}", "```", ""]
    for para in (cmd.help or "").strip().split("\n\n"):
        lines = [line.strip() for line in para.strip().splitlines()]
        if lines and all(line.startswith("initlab ") for line in lines):  # an example: shown as typed
            out += ["```bash", *lines, "```", ""]
        else:
            out += [_text(_unrich(para)), ""]
    rows = [r for r in records if r]
    if rows:
        out += ["| argument or option | help |", "|---|---|"]
        out += [f"| `{name.replace('`', '')}` | {_text(_unrich(help_text))} |" for name, help_text in rows]
        out += ["| `-h`, `--help` | Show this message and exit. |", ""]
    if hasattr(cmd, "list_commands"):  # a group: its subcommands follow
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                out += _command_md(sub, [*path, name], ctx)
    return out


def cli_reference() -> str:
    """Markdown for every command of ``initlab``, walked from the click group typer builds."""
    import typer.main

    from initlab.cli.main import app, load_commands

    load_commands()
    root = typer.main.get_command(app)
    lines = _command_md(root, ["initlab"])
    return "\n".join(lines)


def catalog_table() -> str:
    """The catalog as a Markdown table: name, aliases, parameters, distribution, paper."""
    from initlab import initializers

    rows = ["| name | aliases | parameters and defaults | distribution / formula | reference |",
            "|---|---|---|---|---|"]
    for s in initializers.catalog():
        params = ", ".join(f"{k}={v}" for k, v in s.defaults.items())
        aliases = ", ".join(f"`{a}`" for a in s.aliases)
        rows.append(f"| `{s.name}` | {aliases} | {_text(params)} | {_text(s.formula)} | {_text(s.reference)} |")
    return "\n".join(rows)


GENERATORS = {"<!-- generated:cli -->": cli_reference, "<!-- generated:catalog -->": catalog_table}


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs' signature)
    for marker, make in GENERATORS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
