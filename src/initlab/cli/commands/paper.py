"""``initlab paper``: re-run a classic initialization paper and check its claims."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.table import Table

from ..main import app, console, err_console

if TYPE_CHECKING:
    from ...papers import PaperResult


@app.command("paper")
def paper_command(
    name: str | None = typer.Argument(None, help="The paper to re-run (see --list), e.g. he2015."),
    list_papers: bool = typer.Option(False, "--list", help="List the papers initlab can re-run and exit."),
    out: Path | None = typer.Option(None, "--out", help="Folder for report.html, report.md, results.json and the PNGs "
                                    "(default initlab-out/paper/NAME)."),
    quick: bool = typer.Option(False, "--quick", help="A smaller grid with the same claims (under a minute)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every draw (weights, data split, minibatch order)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (what results.json holds) instead of a table."),
) -> None:
    """Re-run a classic weight-initialization paper at small scale and say which claims reproduce.

    Each claim is decided by a criterion fixed in code before the run; the report says how the
    setup differs from the paper's.

    Examples:

      initlab paper --list

      initlab paper he2015 --quick

      initlab paper saxe2014 --out /tmp/saxe --seed 1 --json
    """
    from ... import papers
    from ..._validation import ValidationError, check_int, check_out_folder
    from ...papers.report import DEFAULT_OUT, save

    if list_papers:
        _print_list()
        return
    if name is None:
        raise ValidationError("give a paper NAME (allowed: " + ", ".join(papers.names()) + ") or --list")
    paper = papers.get(name)  # unknown name: did-you-mean, before anything is written
    check_int("--seed", seed, minimum=0, maximum=2**31 - 1)
    folder = check_out_folder("--out", out if out is not None else Path(DEFAULT_OUT) / paper.name)
    scale = "quick" if quick else "full"
    if as_json:
        result = papers.run(paper.name, quick=quick, seed=seed)
    else:
        with err_console.status(f"re-running {paper.name} ({scale} run, seed {seed}) ..."):
            result = papers.run(paper.name, quick=quick, seed=seed)
    folder = save(result, folder)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    _print_result(result, folder)


def _print_list() -> None:
    """Name and one-line summary of each paper whose module is in this build, one per line."""
    from ... import papers
    from ..._validation import ValidationError

    for name in papers.names():
        try:
            paper = papers.get(name)
        except ValidationError:
            continue  # its module is not in this build
        print(f"{name:<16}{paper.summary}")


def _print_result(result: PaperResult, folder: Path) -> None:
    from ...papers.report import claim_rows, summary_line

    table = Table(title=f"{result.title} ({'quick' if result.quick else 'full'} run, seed {result.seed})",
                  box=box.SIMPLE_HEAD, show_lines=True)
    for col, ratio in (("claim", 2), ("the paper says", 4), ("initlab measured", 4), ("reproduced", 1)):
        table.add_column(col, ratio=ratio, no_wrap=col == "reproduced", overflow="fold")
    for cid, says, measured, _criterion, holds in claim_rows(result):
        color = {"yes": "green", "no": "red"}.get(holds, "yellow")
        table.add_row(cid, says, measured, f"[{color}]{holds}[/]")
    console.print(table)
    console.print(f"[bold]{summary_line(result)}[/] in {result.elapsed_s:.1f} s; "
                  f"criteria and notes in the report.")
    console.print(f"[bold]report:[/] {folder / 'report.html'}  (also report.md)")
    console.print(f"[bold]results:[/] {folder / 'results.json'}")
