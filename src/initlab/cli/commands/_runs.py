"""What ``reproduce`` and ``train`` print: a progress line per experiment, the table, the files."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich import box
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..main import console, err_console

# TABLE_COLUMNS without the verdict, shortened for a terminal.
_SHORT_COLUMNS = ["experiment", "act", "init", "train", "val", "distinct", "dead", "grad@0", "grad@end"]  # noqa: E501


@contextmanager
def epoch_progress(quiet: bool = False) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar per experiment on stderr; yields the library's ``progress`` callback."""
    if quiet:
        yield None
        return
    bars = Progress(TextColumn("[bold]{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("epochs"), TimeElapsedColumn(), console=err_console, transient=False)
    tasks: dict[str, TaskID] = {}

    def update(name: str, epoch: int, epochs: int) -> None:
        if not tasks:  # started on the first report, so an early input error prints nothing else
            bars.start()
        if name not in tasks:
            tasks[name] = bars.add_task(name, total=epochs)
        bars.update(tasks[name], completed=epoch)

    try:
        yield update
    finally:
        if tasks:
            bars.stop()


def print_results(entries: Sequence[dict[str, Any]], folder: Path, files: Sequence[Path], as_json: bool,
                  stored: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """The table of results and where the files went (or the results as JSON). ``stored``: run_id ->
    the numbers a re-run (``train --spec``) is compared with; each comparison is printed (JSON: ``rerun``)."""
    from ...experiments.rerun import compare_rerun
    from ...report.explain import TABLE_COLUMNS, table_row

    assert len(_SHORT_COLUMNS) == len(TABLE_COLUMNS) - 1
    stored = stored or {}
    checks = [compare_rerun(stored[e["run_id"]], e) if e.get("run_id") in stored else None for e in entries]
    if as_json:
        entries = [entry | {"rerun": check} if check else entry for entry, check in zip(entries, checks, strict=True)]
        print(json.dumps({"out": str(folder), "experiments": list(entries)}, indent=2))
        return
    # The numbers in a table, the verdict sentences under it: readable in 80 columns.
    table = Table(title="initlab results", caption="units: distinct / dead hidden units at the end of training;\n"
                  "grad: norm of dLoss/dW reaching the first hidden layer", box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False,
                  collapse_padding=True)
    for col in _SHORT_COLUMNS:
        text = col in ("experiment", "init", "act")
        table.add_column(col, justify="left" if text else "right", no_wrap=True)
    for entry in entries:
        row = table_row(entry)[:-1]
        row[5:7] = [cell.replace(" of ", "/") for cell in row[5:7]]
        table.add_row(*row)
    console.print(table)
    console.print("[bold]Verdicts, from the measurements:[/]")
    for entry in entries:  # hanging indent: wrapped lines stay under the verdict, not the margin
        console.print(Padding(Text.assemble((entry["name"], "bold"), ": ", table_row(entry)[-1]), (0, 0, 0, 2)),
                      highlight=False)
    for entry, check in zip(entries, checks, strict=True):
        if check:
            console.print(Padding(Text.assemble((entry["name"], "bold"), ": ", check["note"]), (0, 0, 0, 2)),
                          highlight=False)
    console.print(f"[bold]report:[/] {folder / 'report.html'}  (also report.md)")
    console.print(f"[bold]results:[/] {folder / 'results.json'}")
    console.print(f"[bold]figures:[/] {len(files)} PNG files in {folder}")

