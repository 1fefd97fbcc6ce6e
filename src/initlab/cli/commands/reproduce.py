"""``initlab reproduce``: the classic zero-initialization experiments, measured."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..defaults import CLASSIC_NAMES, REPRODUCE_OUT
from ..main import app
from ._runs import epoch_progress, print_results


@app.command("reproduce")
def reproduce_command(
    out: Path = typer.Option(Path(REPRODUCE_OUT), "--out", help="Folder for report.html, report.md, results.json and the PNGs."),
    data: Path | None = typer.Option(None, "--data", help="A CSV file (header row, class in the last column) instead of two moons."),
    epochs: int = typer.Option(100, "--epochs", help="Epochs per experiment (the notebook: 100)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weight draw and the minibatch order."),
    only: str | None = typer.Option(None, "--only", help=f"Run only these, comma-separated: {', '.join(CLASSIC_NAMES)}."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON instead of a table."),
) -> None:
    """Reproduce the classic weight-initialization experiments and explain them from measurements.

    Runs zeros_relu, zeros_sigmoid (every weight and bias zero), xavier_tanh
    and he_relu on the same 2-10-1 network and data, then writes a report with
    decision boundaries and a table.

    Examples:

      initlab reproduce

      initlab reproduce --out /tmp/repro --only zeros_sigmoid,he_relu --epochs 50
    """
    from ...experiments.reproduce import reproduce

    with epoch_progress(quiet=as_json) as progress:
        results, outputs = reproduce(out, data=data, epochs=epochs, seed=seed, only=only, progress=progress)
    entries = json.loads(outputs.results_json.read_text())["experiments"]
    print_results(entries, outputs.folder, outputs.figures, as_json)
