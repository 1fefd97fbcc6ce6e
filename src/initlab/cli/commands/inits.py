"""``initlab inits``: the initializer catalog."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from ... import initializers
from ..main import app, console


@app.command("inits")
def inits_command(
    as_json: bool = typer.Option(False, "--json", help="Print the catalog as JSON."),
) -> None:
    """The initializer catalog: name, aliases, parameters, distribution and formula, paper.

    Example: initlab inits --json
    """
    rows = [
        {
            "name": s.name,
            "aliases": list(s.aliases),
            "kind": s.kind,
            "params": s.defaults,
            "formula": s.formula,
            "reference": s.reference,
        }
        for s in initializers.catalog()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="initlab initializers", show_lines=True, expand=True)
    table.add_column("name", no_wrap=True, style="bold")
    for col in ("aliases", "parameters", "distribution / formula", "reference"):
        table.add_column(col, overflow="fold", ratio=2 if col != "aliases" else 1)
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        table.add_row(r["name"], ", ".join(r["aliases"]), params, r["formula"], r["reference"])
    console.print(table)
