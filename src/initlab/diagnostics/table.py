"""A ``rich`` table of a diagnosis (or of two: before and after a re-initialization)."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table

from .diagnose import Diagnosis, LayerStats

__all__ = ["diagnosis_table", "COLUMNS", "COMPARE_COLUMNS"]


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
    "sat": lambda s: _pct(s.saturated_fraction),
    "|dL/dW|": _weighted(lambda s: _num(s.grad_norm)),
    "|dL/dy|": lambda s: _num(s.output_grad_norm),
    "w std": _weighted(lambda s: _num(s.weight_std)),
    "healthy": _weighted(lambda s: _num(s.healthy_weight_std)),
    "distinct": _weighted(lambda s: f"{s.distinct_units}/{s.units}"),
}
# the narrower set shown as "before -> after"
COMPARE_COLUMNS = ("std", "dead", "sat", "|dL/dy|", "w std", "distinct")


def diagnosis_table(before: Diagnosis, after: Diagnosis | None = None, title: str | None = None) -> Table:
    """One row per layer; with ``after``, the columns of ``COMPARE_COLUMNS`` read ``before -> after``."""
    table = Table(title=title or ("initlab doctor: before -> after" if after else "initlab doctor"))
    table.add_column("layer", no_wrap=True)
    if after is None:
        table.add_column("kind")
        table.add_column("units", justify="right")
    table.add_column("act", no_wrap=True, min_width=4)
    columns = {k: COLUMNS[k] for k in COMPARE_COLUMNS} if after is not None else COLUMNS
    for col in columns:
        table.add_column(col, justify="right", no_wrap=after is not None)
    for s, cells in layer_cells(before, after, columns, arrow="\n→"):  # two short lines per cell
        head = [s.name, s.activation or "-"] if after is not None else [s.name, s.kind, str(s.units), s.activation or "-"]
        table.add_row(*head, *cells)
    return table


def layer_cells(before: Diagnosis, after: Diagnosis | None, columns=COLUMNS, arrow: str = "->"):
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
