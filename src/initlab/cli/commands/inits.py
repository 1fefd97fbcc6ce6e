"""``initlab inits``: the initializer catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..main import app, console


@app.command("inits")
def inits_command(
    as_json: bool = typer.Option(False, "--json", help="Print the catalog as JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Also draw each scheme's weights for one layer to this PNG."),
    fan_in: int = typer.Option(256, "--fan-in", min=1, help="Layer fan-in for --plot."),
    fan_out: int = typer.Option(256, "--fan-out", min=1, help="Layer fan-out for --plot."),
) -> None:
    """The initializer catalog: name, aliases, parameters, distribution and formula, paper.

    Examples: initlab inits --json;  initlab inits --plot catalog.png --fan-in 512 --fan-out 128
    """
    from ... import initializers

    if plot is not None:
        from ...plots import check_figure_path, save
        from ...plots.catalog import catalog_figure

        check_figure_path(plot, "--plot")
        save(catalog_figure(fan_in, fan_out), plot)
    rows: list[dict[str, Any]] = [
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
    if plot is not None:
        console.print(f"wrote {plot}")
    table = Table(title="initlab initializers", show_lines=True, expand=True)
    table.add_column("name", no_wrap=True, style="bold")
    for col in ("aliases", "parameters", "distribution / formula", "reference"):
        table.add_column(col, overflow="fold", ratio=2 if col != "aliases" else 1)
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        table.add_row(r["name"], ", ".join(r["aliases"]), params, r["formula"], r["reference"])
    console.print(table)
