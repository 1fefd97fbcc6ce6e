"""``initlab doctor``: diagnose the initialization of a user's model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..._validation import ValidationError
from ..main import app, console, err_console

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ...diagnostics.io import Inputs


@contextmanager
def _progress(refresh_per_second: float = 2.0) -> Iterator[Callable[[str, int, int | None], None] | None]:
    """A progress bar on stderr (a terminal only; it vanishes when done): the forward and backward
    pass, then the layers measured, of each diagnosis, then the report. Two redraws a second at
    most: a thread waking often stalls torch's spinning OpenMP workers (see ``sweep``)."""
    if not err_console.is_terminal:  # no bar in logs and pipes
        yield None
        return
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[step]}"), TimeElapsedColumn(), console=err_console,
                   refresh_per_second=refresh_per_second, transient=True)
    tasks: dict[str, TaskID] = {}

    def update(label: str, done: int, total: int | None) -> None:
        if not tasks:
            bar.start()
        if label == "report":
            description, step = "report", "writing"
        else:
            description, step = f"diagnosing {label}", "layers measured" if total else "forward and backward pass"
        if label not in tasks:
            tasks[label] = bar.add_task(description, total=total, step=step)
        bar.update(tasks[label], completed=done, total=total, step=step)

    try:
        yield update
    finally:
        if tasks:
            bar.stop()


def _auto_init(model: nn.Module, inputs: Inputs, generator: torch.Generator) -> None:
    """``--init auto``: initlab.autoinit on the doctor's batch (analytic mode)."""
    from ...autoinit import autoinit

    autoinit(model, inputs, generator=generator)


_auto_init.label = "auto"  # type: ignore[attr-defined]  # run_doctor reads it with getattr(reinit, "label")


@app.command("doctor")
def doctor_command(
    target: str = typer.Argument(..., metavar="FILE.py:FACTORY", help=(
        "A Python file (or module) and the function in it that returns the model."
    )),
    input_shape: str = typer.Option(None, "--input-shape", help="One sample's shape, without the batch dimension: 784 or 3,32,32."),
    batch: int = typer.Option(64, "--batch", help="Rows in the random batch (or the first rows of --data)."),
    data: Path = typer.Option(None, "--data", help=(
        "A .npy array of inputs to use instead of random ones (first --batch rows; integer arrays stay "
        "integer ids), or a .npz of several arrays passed as keyword inputs (input_ids, attention_mask)."
    )),
    dtype: str = typer.Option(None, "--dtype", help=(
        "float or long. Random inputs: float (standard normal, the default) or long (token ids in [0, "
        "--vocab)). With --data: cast the arrays (default: kept as they are, integer arrays stay ids)."
    )),
    vocab: int = typer.Option(None, "--vocab", help="Number of token ids for --dtype long (the embedding's size)."),
    output: str = typer.Option(None, "--output", help=(
        "The output to measure when the model returns a dict, dataclass or tuple: a field name (default: "
        "logits, else the first tensor) or an index."
    )),
    init: str = typer.Option(None, "--init", help=(
        "Also re-initialize with this catalog initializer, or 'auto' (initlab.autoinit), and compare "
        "(see `initlab inits`)."
    )),
    out: Path = typer.Option(Path("initlab-out/doctor"), "--out", help="Folder for report.html and report.json."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random batch and of --init."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json to stdout instead of the table."),
) -> None:
    """Diagnose a model's initialization: per-layer statistics, verdicts and fixes.

    Example: initlab doctor mymodel.py:deep --input-shape 3,32,32 --init he_normal (or --init auto)

    Token ids: initlab doctor gpt.py:make --dtype long --vocab 200 --input-shape 16
    """
    from ...diagnostics.doctor import run_doctor

    with _progress() as progress:
        try:
            result = run_doctor(target, input_shape, batch, data, _auto_init if init == "auto" else init, seed, dtype, vocab,
                                output, progress)
        except SystemExit as exc:  # the user's file or factory exited: no report, so never a silent success
            raise ValidationError(f"{target}: the model's code called sys.exit({exc.code!r}) while it was loaded, built "
                                  "or run; no report was written (the factory must return a torch.nn.Module)") from None
        if progress is not None:
            progress("report", 0, None)
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
