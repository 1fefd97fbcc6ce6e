"""``initlab sweep``, ``initlab results``, ``initlab plot``: grids of runs, their store, their figures."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..._validation import ValidationError, check_choice, check_int
from ..defaults import STORE
from ..main import app, console, fail

if TYPE_CHECKING:
    from ...experiments.execute import Executor
    from ...experiments.sweep import SweepReport
    from ...experiments.sweep_spec import SweepSpec


@app.command("sweep")
def sweep_command(
    spec: Path = typer.Argument(..., help="The sweep spec (TOML) with tables data, grid and train (see examples/sweep.toml)."),
    store: Path = typer.Option(Path(STORE), "--store", help="SQLite store (created if missing)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    executor: str = typer.Option("local", "--executor", help="local (batched, in this process) or ray (pip install 'initlab\\[ray]')."),
    address: str = typer.Option(None, "--address", help="ray: auto or HOST:PORT of a running cluster (default: a local Ray instance)."),
    threads: int = typer.Option(0, "--threads", help=(
        "torch CPU threads (0: initlab's default, see initlab --help; ray: per task, default 1)."
    )),
    max_batch: int = typer.Option(1000, "--max-batch", help="Most runs trained together (and lost to a crash)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and count the runs; train nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train every run of a grid, batched, into a resumable SQLite store.

    Re-running the same spec skips finished runs; an interrupted sweep loses at
    most the batch in flight and the one being written.

    Example: initlab sweep examples/sweep.toml --store initlab.db

    On a Ray cluster (each node: pip install 'initlab\\[ray]'):
    initlab sweep examples/sweep.toml --executor ray --address auto
    """
    from ...experiments.executors import EXECUTORS, open_executor
    from ...experiments.store import Store
    from ...experiments.sweep import check_data
    from ...experiments.sweep_spec import load_spec

    parsed = load_spec(spec)  # every key and name checked before any work
    check_int("--threads", threads, 0)
    executor = check_choice("executor", executor.strip().lower(), EXECUTORS)
    if dry_run:
        runs = parsed.runs()
        payload = {"spec_hash": parsed.spec_hash, "runs": len(runs), "grid": parsed.grid}
        console.print_json(json.dumps(payload, default=str)) if as_json else console.print(
            f"{spec}: {len(runs)} runs (spec {parsed.spec_hash})")
        return
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    columns = (TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    # The executor connects (or fails, in one line) before the store is opened. No refresh
    # thread: a Python thread waking 10 times a second stalls torch's spinning OpenMP workers
    # on a small machine (measured: 20 s instead of 2 s); redraw per batch instead.
    check_data(parsed)  # a bad CSV fails before the executor starts or a store is created
    # torch and the library are imported now: their ~180,000 objects are not garbage, yet each full
    # collection during the sweep would scan them all (measured: three of 0.15 s in a 5,000-run
    # sweep with diagnostics). Frozen, collections scan the sweep's own objects only; unfrozen after.
    gc.freeze()
    try:
        with open_executor(executor, address, threads=threads or 1) as runner:
            Store(store).close()  # a store that cannot be written (another program's, read-only) fails here
            with Progress(*columns, console=console, disable=as_json, auto_refresh=False) as bar:
                report = _sweep_with_bar(bar, parsed, store, device, runner, max_batch)
    finally:
        gc.unfreeze()
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    raced = f"; {report.raced} more trained here were committed first by another sweep" if report.raced else ""
    console.print(
        f"{report.trained} runs trained and stored by this sweep, {report.skipped} already in {report.store} "
        f"({report.diverged} diverged{raced}) in {report.wall_time:.1f} s on {report.device}"
        + (f": {report.runs_per_second:.1f} runs/s" if report.trained else "")
    )


def _sweep_with_bar(bar: Progress, parsed: SweepSpec, store: Path, device: str, runner: Executor,
                    max_batch: int) -> SweepReport:
    """Run the sweep, redrawing ``bar`` after each committed batch."""
    from ...experiments.sweep import run_sweep

    task = bar.add_task("sweep", total=None, rate="")
    start: dict[str, int | None] = {"done": None}

    def progress(done: int, total: int) -> None:
        if start["done"] is None:
            start["done"] = done
            bar.reset(task, total=total, completed=done)  # ETA counts this session's runs only
        else:
            speed = bar.tasks[0].speed
            bar.update(task, completed=done, rate=f"{speed:.1f} runs/s" if speed else "")
        bar.refresh()

    return run_sweep(parsed, store, device=device, executor=runner, progress=progress, max_batch=max_batch)


@app.command("results")
def results_command(
    store: Path = typer.Option(Path(STORE), "--store", help="SQLite store written by `initlab sweep`."),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
    by: str = typer.Option("", "--by", help="Comma-separated columns to group by (default: all that vary but the seed)."),
    sweep: str = typer.Option("", "--sweep", help="Only the runs of this spec hash."),
    sort: str = typer.Option("val_accuracy_mean", "--sort", help="Sort by this column (descending)."),
    run: str = typer.Option("", "--run", help="One run's record (spec, history, diagnostics) by run id or a unique prefix."),
) -> None:
    """Aggregated results over seeds: mean, std and n of the final and best metrics; or one run's record.

    Examples:

      initlab results --store initlab.db --format csv

      initlab results --store initlab.db --run 3f2a9c --format json > run.json; initlab train --spec run.json
    """
    if fmt not in ("table", "csv", "json"):
        raise fail(f"unknown format {fmt!r} (allowed: table, csv, json)")
    if run:
        from ... import results as results_lib  # pandas: loaded by the commands that read a store

        record = results_lib.run(store, run)
        if fmt == "json":
            print(json.dumps(record, indent=2))
        else:
            table = Table(title=f"run {record['run_id']} in {store.name}", show_header=False)
            for key, value in record.items():
                if key not in ("history", "diagnostics", "diagnostics_init"):
                    table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
            console.print(table)
        return
    from ... import results as results_lib

    df = results_lib.load(store, spec_hash=sweep or None)
    agg = results_lib.aggregate(df, by=[c.strip() for c in by.split(",") if c.strip()] or None)
    if agg.empty:
        raise fail(f"store {str(store)!r} has no runs", code=2)
    check_choice("--sort column", sort, list(agg.columns))
    agg = agg.sort_values(sort, ascending=False, kind="stable")
    if fmt == "csv":
        print(agg.to_csv(index=False), end="")
    elif fmt == "json":
        print(agg.to_json(orient="records"))
    else:
        table = Table(title=f"{len(df)} runs in {store.name}, mean ± std over seeds")
        keys = [c for c in agg.columns if not c.endswith(("_mean", "_std")) and c not in ("n", "diverged")]
        # the table keeps to 80 columns; --format csv/json holds every metric
        for col in [*keys, "val acc", "loss", "n", "diverged"]:
            if col in keys:  # initializer labels fold; short keys keep their header on one line
                table.add_column(col, justify="left", overflow="fold", min_width=16 if col == "init" else len(col))
            else:
                table.add_column(col, justify="right", no_wrap=True)
        for _, row in agg.iterrows():
            def pm(metric: str, row: Any = row) -> str:  # row bound now (called in this iteration only)
                mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
                return "-" if mean != mean else f"{mean:.3f}±{0.0 if std != std else std:.3f}"
            table.add_row(*[str(row[k]) for k in keys], pm("val_accuracy"), pm("train_loss"),
                          str(row["n"]), str(row["diverged"]))
        console.print(table)


@app.command("plot")
def plot_command(
    store: Path = typer.Option(Path(STORE), "--store", help="SQLite store written by `initlab sweep`."),
    out: Path = typer.Option(Path("sweep.png"), "--out", help="PNG file to write."),
    kind: str = typer.Option("heatmap", "--kind", help="heatmap or curves."),
    value: str = typer.Option("val_accuracy", "--value", help="heatmap: the column to colour by."),
    rows: str = typer.Option("init", "--rows", help="heatmap: the parameter down the rows."),
    cols: str = typer.Option("depth", "--cols", help="heatmap: the parameter across the columns."),
    panel: str = typer.Option("activation", "--panel", help="One panel per value of this parameter."),
    metric: str = typer.Option("val_accuracy", "--metric", help="curves: loss, accuracy, val_loss or val_accuracy."),
    where: list[str] = typer.Option([], "--where", help="curves: keep runs with KEY=VALUE (repeatable), e.g. depth=2."),
    sweep: str = typer.Option("", "--sweep", help="Only the runs of this spec hash."),
) -> None:
    """Heat maps (e.g. init x depth coloured by validation accuracy, a panel per activation) or learning curves.

    Example: initlab plot --store initlab.db --kind curves --where depth=2 --where width=10 --out curves.png
    """
    from ...plots import check_figure_path, save
    from ...plots.sweep import heatmap, learning_curves

    if kind not in ("heatmap", "curves"):
        raise fail(f"unknown plot kind {kind!r} (allowed: heatmap, curves)")
    check_figure_path(out, "--out")
    from ... import results as results_lib

    df = results_lib.load(store, spec_hash=sweep or None, history=kind == "curves")
    if kind == "heatmap":
        fig = heatmap(df, value=value, rows=rows, cols=cols, panel=panel)
    else:
        filters = {}
        for item in where:
            key, sep, raw = item.partition("=")
            if not sep:
                raise fail(f"--where needs KEY=VALUE, got {item!r}")
            col = df[key] if key in df else None
            kind_of = type(col.iloc[0].item() if hasattr(col.iloc[0], "item") else col.iloc[0]) if col is not None and len(col) else str
            try:
                filters[key] = kind_of(raw)
            except ValueError:
                assert col is not None  # else kind_of is str, which raises no ValueError
                raise ValidationError(f"--where {key}={raw}: {key} holds {kind_of.__name__} values, e.g. {key}={col.iloc[0]}") from None
        fig = learning_curves(df, metric=metric, panel=panel, where=filters)
    path = save(fig, out)
    console.print(f"wrote {path}")
