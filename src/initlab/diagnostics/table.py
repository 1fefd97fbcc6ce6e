"""A ``rich`` table of a diagnosis (or of two: before and after a re-initialization)."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table

from .diagnose import Diagnosis, LayerStats

__all__ = ["diagnosis_table", "layer_cells", "COLUMNS", "COMPARE_COLUMNS", "TERMINAL_COLUMNS"]


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _weighted(cell: Callable[[LayerStats], str]) -> Callable[[LayerStats], str]:
    return lambda s: cell(s) if s.weighted else "-"


# header -> cell text of one layer. std x: std over the previous hidden layer's; |dL/dy|: norm of
# the gradient reaching the layer's output; healthy: gain / sqrt(fan_in) for the next activation.
COLUMNS: dict[str, Callable[[LayerStats], str]] = {
    "mean": lambda s: _num(s.mean),
    "std": lambda s: _num(s.std),
    "std x": lambda s: _num(s.std_change),
    "dead": lambda s: _pct(s.dead_fraction),
    "sat": lambda s: _pct(s.saturated_fraction) if s.saturable else "-",  # "-": unbounded activation, not checked
    "|dL/dW|": _weighted(lambda s: _num(s.grad_norm)),
    "|dL/dy|": lambda s: _num(s.output_grad_norm),
    "w std": _weighted(lambda s: _num(s.weight_std)),
    "healthy": _weighted(lambda s: _num(s.healthy_weight_std) if s.healthy_weight_std > 0 else "-"),  # "-": no fan-in rule
    "distinct": _weighted(lambda s: f"{s.distinct_units}/{s.units}"),
}
# the narrower set shown as "before -> after"
COMPARE_COLUMNS = ("std", "dead", "sat", "|dL/dy|", "w std", "distinct")
# the terminal's single-diagnosis table: related numbers share a cell on two lines, so the whole
# table fits 80 columns (the HTML report has one column per number)
TERMINAL_COLUMNS: dict[str, Callable[[LayerStats], str]] = {
    "std\n× prev": lambda s: COLUMNS["std"](s) + ("" if s.std_change is None else f"\n×{COLUMNS['std x'](s)}"),
    "dead": COLUMNS["dead"],
    "sat": COLUMNS["sat"],
    "|dL/dW|\n|dL/dy|": lambda s: f"{COLUMNS['|dL/dW|'](s)}\n{COLUMNS['|dL/dy|'](s)}",
    "w std\n(healthy)": lambda s: COLUMNS["w std"](s) + (f"\n({COLUMNS['healthy'](s)})" if s.weighted else ""),
    "distinct": COLUMNS["distinct"],
}


def diagnosis_table(before: Diagnosis, after: Diagnosis | None = None, title: str | None = None) -> Table:
    """One row per layer; with ``after``, the columns of ``COMPARE_COLUMNS`` read ``before -> after``."""
    coverage = before.coverage.sentence() if before.coverage is not None else None
    table = Table(title=title or ("initlab doctor: before -> after" if after else "initlab doctor"),
                  caption=coverage, caption_justify="left")
    # the name column never shrinks below a readable width (long role names fold onto more lines)
    longest = max((len(s.name) for s in before.layers), default=5)
    table.add_column("layer", overflow="fold", min_width=min(longest, 12))
    table.add_column("act", overflow="fold", min_width=4)
    columns = {k: COLUMNS[k] for k in COMPARE_COLUMNS} if after is not None else TERMINAL_COLUMNS
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    arrow = "\n→"  # two short lines per cell
    for s, cells in layer_cells(before, after, columns, arrow=arrow):
        table.add_row(s.name if after is not None else f"{s.name}\n{s.kind} {s.units}", s.activation or "-", *cells)
    return table


def layer_cells(before: Diagnosis, after: Diagnosis | None,
                columns: dict[str, Callable[[LayerStats], str]] = COLUMNS,
                arrow: str = "->") -> list[tuple[LayerStats, list[str]]]:
    """Per layer of ``before``: ``(stats, cells)``, each cell ``"before <arrow> after"`` when ``after`` is given."""
    others = {s.name: s for s in after.layers} if after is not None else {}
    rows = []
    for s in before.layers:
        cells = []
        for cell in columns.values():
            text = cell(s)
            if after is not None:
                other = others.get(s.name)
                text = f"{text} {arrow} {cell(other) if other else '?'}"
            cells.append(text)
        rows.append((s, cells))
    return rows
