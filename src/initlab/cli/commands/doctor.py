"""``initlab doctor``: diagnose the initialization of a user's model."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.padding import Padding
from rich.text import Text

from ...diagnostics.doctor import run_doctor
from ..main import app, console


def _auto_init(model, inputs, generator) -> None:
    """``--init auto``: initlab.autoinit on the doctor's batch (analytic mode)."""
    from ...autoinit import autoinit

    autoinit(model, inputs, generator=generator)


_auto_init.label = "auto"


@app.command("doctor")
def doctor_command(
    target: str = typer.Argument(..., metavar="FILE.py:FACTORY", help="A Python file (or module) and the function in it that returns the model."),
    input_shape: str = typer.Option(None, "--input-shape", help="One sample's shape, without the batch dimension: 784 or 3,32,32."),
    batch: int = typer.Option(64, "--batch", help="Rows in the standard-normal batch."),
    data: Path = typer.Option(None, "--data", help="A .npy array of inputs to use instead of random ones (first --batch rows)."),
    init: str = typer.Option(None, "--init", help="Also re-initialize with this catalog initializer, or 'auto' (initlab.autoinit), and compare (see `initlab inits`)."),
    out: Path = typer.Option(Path("initlab-out/doctor"), "--out", help="Folder for report.html and report.json."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random batch and of --init."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json to stdout instead of the table."),
) -> None:
    """Diagnose a model's initialization: per-layer statistics, verdicts and fixes.

    Example: initlab doctor mymodel.py:deep --input-shape 3,32,32 --init he_normal (or --init auto)
    """
    result = run_doctor(target, input_shape, batch, data, _auto_init if init == "auto" else init, seed)
    from ...report.doctor import write_report  # matplotlib: loaded when a report is written

    paths = write_report(result, out)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    console.print(result.before.table(result.after, title=f"initlab doctor {target}"
                                      + (f" (as built -> {result.init})" if result.after else "")))
    runs = [("as built", result.before)] + ([(result.init, result.after)] if result.after else [])
    for label, diag in runs:
        console.print(f"[bold]{label}[/]:")
        for v in diag.verdicts:
            color = "green" if v.code == "healthy" else "red"
            console.print(Padding(Text.assemble((v.code, color), ": ", v.message), (0, 0, 0, 2)), highlight=False)
            if v.fix:
                console.print(Padding(Text(f"fix: {v.fix}"), (0, 0, 0, 4)), highlight=False)
    console.print(f"wrote {paths['html']} and {paths['json']}", highlight=False)
