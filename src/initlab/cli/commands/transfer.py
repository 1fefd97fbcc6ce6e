"""``initlab transfer``: does the best learning rate stay put across width (and depth)?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.table import Table

from ..main import app, console, err_console

if TYPE_CHECKING:
    from rich.console import JustifyMethod


@app.command("transfer")
def transfer_command(
    target: str | None = typer.Argument(None, metavar="[FILE.py:FACTORY]",
                                        help="Your model: FACTORY(width) or FACTORY(width, depth) returning an "
                                             "nn.Module for --task. Default: the built-in --family."),
    family: str = typer.Option("mlp", "--family", help="Built-in family: mlp (digits) or transformer (a generated "
                                                      "sequence task)."),
    task: str = typer.Option(None, "--task", help="Task of a FACTORY: digits ((B, 64) -> (B, 10) logits) or sequence "
                                                 "((B, 16) token ids -> (B, 16, 32) logits)."),
    widths: str = typer.Option(None, "--widths", help="At least 2 widths, comma separated (default mlp "
                                                     "64,128,256,512,1024; transformer 16,32,64,128)."),
    depths: str = typer.Option(None, "--depths", help="Depths (residual blocks), comma separated; several: also "
                                                     "the depth axis, at the smallest width (default mlp 1, "
                                                     "transformer 2)."),
    lrs: str = typer.Option(None, "--lrs", help="Adam learning rates: a range 2^-12:2^-1 (one per octave; "
                                               "2^-12:2^-1:0.5 for half octaves) or a list 1e-3,3e-3,1e-2 "
                                               "(default 2^-12:2^-1; umup 2^-7:2^4, its valley sits near 1)."),
    parametrizations: str = typer.Option("sp,mup", "--parametrizations",
                                         help="Comma separated: sp, mup, umup, depth-mup, completep."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per (width, lr): 1-100; the intervals bootstrap over them."),
    steps: int = typer.Option(None, "--steps", help="Adam steps per network (default mlp 200, transformer 100)."),
    batch: int = typer.Option(None, "--batch", help="Minibatch size (default mlp 64, transformer 16 sequences)."),
    base_width: int = typer.Option(None, "--base-width", help="Width at which muP equals SP (default: the smallest)."),
    base_depth: int = typer.Option(None, "--base-depth", help="Depth at which depth-muP and CompleteP equal muP "
                                                             "(default: the smallest)."),
    store: Path = typer.Option(None, "--store", help="SQLite file of finished cells: a rerun trains only what is "
                                                    "missing."),
    out: Path = typer.Option(Path("initlab-out/transfer"), "--out", help="Folder for transfer.json, cells.csv and the "
                                                                        "PNGs."),
    as_json: bool = typer.Option(False, "--json", help="Print transfer.json to stdout instead of the table."),
) -> None:
    """Train every (width, learning rate, seed) per parametrization and measure how the best
    learning rate drifts, in octaves per doubling of width (Tensor Programs V, figure 1).

    Examples:

      initlab transfer --family mlp --widths 64,128,256,512,1024 --parametrizations sp,mup

      initlab transfer --family transformer --widths 16,32,64 --depths 1,2,4 --parametrizations mup,completep

      initlab transfer mymodel.py:make --task digits --widths 64,256,1024 --lrs 2^-12:2^-2 --store grid.db
    """
    from ..._validation import check_out_folder
    from ...transfer import transfer

    check_out_folder("--out", out)
    factory = None
    if target is not None:
        from ...diagnostics.doctor import load_factory

        factory = load_factory(target)
    kwargs: dict[str, Any] = dict(family=family, task=task, widths=widths, depths=depths, lrs=lrs, parametrizations=parametrizations,
                  seeds=seeds, steps=steps, batch=batch, base_width=base_width, base_depth=base_depth,
                  store=store)
    if as_json:
        result = transfer(factory, **kwargs)
    else:
        with err_console.status("training the transfer grid ...") as status:
            result = transfer(factory, progress=lambda done, total: status.update(
                f"training the transfer grid: {done}/{total} cells"), **kwargs)
    paths = result.save(out)
    if as_json:
        print(json.dumps({"out": str(out), **result.to_dict()}, indent=2))
        return
    s = result.settings
    table = Table(title=f"initlab transfer: {s['family'] if factory is None else target} on {s['task']}",
                  box=box.SIMPLE_HEAD)
    columns: tuple[tuple[str, JustifyMethod], ...] = (("param", "left"), ("axis", "left"), ("best log2 lr", "left"), ("drift", "right"),
                                                       ("95% interval", "right"), ("verdict", "left"))
    for col, justify in columns:
        table.add_column(col, justify=justify, no_wrap=col != "best log2 lr")
    colors = {"transfers": "green", "drifts": "red", "undetermined": "yellow"}
    for d in result.drift:
        best = ", ".join(f"{k}:{b:+.1f}" + ("|" if e else "")
                         for k, b, e in zip(d.sizes, d.best_log2_lr, d.at_edge, strict=True))
        lo, hi = d.interval
        table.add_row(d.parametrization, d.axis, best, f"{d.octaves_per_doubling:+.2f}", f"[{lo:+.2f}, {hi:+.2f}]",
                      f"[{colors[d.verdict]}]{d.verdict}[/]")
    console.print(table)
    console.print(f"drift: octaves of best lr per doubling of the axis; transfers: the 95% interval lies within "
                  f"+-{s['tolerance']:g} octave per doubling; drifts: it "
                  f"excludes 0 and the drift is larger; '|' marks a best lr at the edge of the grid (undetermined). "
                  f"{len(result.cells)} cells ({result.trained} trained now) in {result.elapsed_s:.1f} s.",
                  highlight=False)
    console.print(f"wrote {paths['json']}, {paths['png']} and {paths['drift_png']}", highlight=False)
