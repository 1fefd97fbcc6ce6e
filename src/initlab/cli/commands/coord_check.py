"""``initlab coord-check``: how each module's output scale moves with width (muP's coordinate check)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..main import app, console, err_console

if TYPE_CHECKING:
    import torch
    from rich.console import JustifyMethod


@app.command("coord-check")
def coord_check_command(
    target: str = typer.Argument(..., metavar="FILE.py:FACTORY",
                                 help="A Python file (or module) and the function in it that builds the model: FACTORY(width)."),
    widths: str = typer.Option("64,128,256,512,1024", "--widths", help="At least 3 distinct positive widths, comma separated."),
    input_shape: str = typer.Option(None, "--input-shape", help="One sample's shape, without the batch dimension: 32 or 3,32,32."),
    batch: int = typer.Option(64, "--batch", help="Rows of the fixed standard-normal batch."),
    data: Path = typer.Option(None, "--data", help="A .npy array of inputs to use instead of random ones (first --batch rows)."),
    steps: int = typer.Option(5, "--steps", help="Optimizer steps on the fixed batch (1-100); step 1 is the initialization."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per width (1-100); curves are means over seeds."),
    optimizer: str = typer.Option("adam", "--optimizer", help="sgd, adam or adamw."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default: 0.1 for sgd, 1e-3 for adam and adamw)."),
    lr_scaling: str = typer.Option("none", "--lr-scaling", help="none, or mup: muP's per-parameter learning rates (mup.MuAdam / MuSGD)."),
    base_width: int = typer.Option(None, "--base-width", help="muP's base width (default: the smallest width)."),
    loss: str = typer.Option("mse", "--loss", help="mse (against standard-normal targets) or cross_entropy (random labels)."),
    threshold: float = typer.Option(None, "--threshold", help=(
        "|slope| below this reads flat (default 0.2): the slope's interval over seeds must lie inside +-threshold."
    )),
    seed: int = typer.Option(0, "--seed", help="Seed of the batch, the targets and the first model seed."),
    out: Path = typer.Option(Path("initlab-out/coord-check"), "--out", help="Folder for coord_check.png, .csv and .json."),
    as_json: bool = typer.Option(False, "--json", help="Print coord_check.json to stdout instead of the table."),
) -> None:
    """Build FACTORY(width) at each width, train a few steps on one batch, and fit how each module's mean |x| scales with width.

    Examples:
      initlab coord-check examples/coordcheck_mlp.py:sp --widths 64,128,256,512,1024 --input-shape 32
      initlab coord-check examples/coordcheck_mlp.py:mup --input-shape 32 --lr-scaling mup
    """
    from ..._validation import check_out_folder
    from ...coordcheck import FLAT_SLOPE, coord_check, load_width_factory, parse_widths
    from ...diagnostics.doctor import load_inputs
    from ...diagnostics.thresholds import SLOPE_INTERVAL

    check_out_folder("out", out)
    width_list = parse_widths(widths)
    factory = load_width_factory(target)
    # a file's rows are the batch; else the library draws the batch and then the targets from --seed
    # a .npz of several arrays loads as a dict: coord_check refuses any batch but a tensor, in one line
    inputs = cast("torch.Tensor | None", load_inputs(input_shape, batch, data) if data is not None else None)
    progress = Progress(TextColumn("[bold]coord-check"), BarColumn(), MofNCompleteColumn(), TextColumn("widths x seeds"),
                        TimeElapsedColumn(), console=err_console, disable=as_json)
    task = progress.add_task("runs", total=None)

    def advance(done: int, total: int) -> None:
        if not progress.live.is_started:  # started after the first run, so bad input prints one line only
            progress.start()
        progress.update(task, completed=done, total=total)

    try:
        result = coord_check(factory, width_list, inputs, input_shape=input_shape, batch=batch, steps=steps, seeds=seeds,
                             optimizer=optimizer, lr=lr, lr_scaling=lr_scaling, base_width=base_width, loss=loss,
                             threshold=FLAT_SLOPE if threshold is None else threshold, seed=seed, progress=advance)
    finally:
        if progress.live.is_started:
            progress.stop()
    paths = result.save(out)
    if as_json:
        print(json.dumps({"out": str(out), **result.to_dict()}, indent=2))
        return
    s = result.settings
    table = Table(title=f"initlab coord-check {target}", box=box.SIMPLE_HEAD)
    columns: tuple[tuple[str, JustifyMethod], ...] = (("module", "left"), ("type", "left"), ("slope", "right"),
                                                       ("sd", "right"), ("interval", "right"), ("verdict", "left"))
    for col, justify in columns:
        table.add_column(col, justify=justify, no_wrap=True)
    colors = {"flat": "green", "grows": "red", "shrinks": "yellow", "undetermined": "magenta", "undefined": "dim"}
    for v in result.verdicts:
        sd = f"{v.slope_sd:.2f}" if v.slope_sd == v.slope_sd else "-"
        slope = f"{round(v.slope, 2) + 0.0:+.2f}" if v.slope == v.slope else "-"
        known = v.slope_lo == v.slope_lo and v.slope_hi == v.slope_hi  # nan with one seed
        interval = f"{v.slope_lo:+.2f}..{v.slope_hi:+.2f}" if known else "-"
        table.add_row(v.module, v.kind, slope, sd, interval, f"[{colors[v.verdict]}]{v.verdict}[/]")
    console.print(table)
    console.print(f"slope: the exponent a of mean|x| ~ width^a at step {result.steps}, fitted to the mean of "
                  f"{result.seeds} seed{'s' if result.seeds > 1 else ''} (sd: over seeds; interval: "
                  f"{SLOPE_INTERVAL:.0%} Student t over seeds); flat: the interval inside +-{result.threshold:g}, "
                  "undetermined: it straddles the threshold", highlight=False)
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    console.print(f"{s['optimizer']} lr {s['lr']:g}" + (f", muP lr scaling from base width {s['base_width']}"
                                                           if s["lr_scaling"] == "mup" else "")
                  + f", widths {','.join(map(str, result.widths))}", highlight=False)
    console.print(f"wrote {paths['png']}, {paths['csv']} and {paths['json']}", highlight=False)
