"""A ``rich`` table of a diagnosis (or of two: before and after a re-initialization)."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table

from .diagnose import Diagnosis, LayerStats

__all__ = ["diagnosis_table", "COLUMNS"]


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _weight(s: LayerStats) -> str:
    return f"{s.weight_std:.3g} / {s.healthy_weight_std:.3g}" if s.weighted else "-"


def _distinct(s: LayerStats) -> str:
    return f"{s.distinct_units}/{s.units}" if s.weighted else "-"


# header -> cell text of one layer
COLUMNS: dict[str, Callable[[LayerStats], str]] = {
    "mean": lambda s: _num(s.mean),
    "std": lambda s: _num(s.std),
    "std x": lambda s: _num(s.std_change),
    "dead": lambda s: _pct(s.dead_fraction),
    "saturated": lambda s: _pct(s.saturated_fraction),
    "|dL/dW|": lambda s: _num(s.grad_norm) if s.weighted else "-",
    "|dL/dy|": lambda s: _num(s.output_grad_norm),
    "w std / healthy": _weight,
    "distinct": _distinct,
}


def diagnosis_table(before: Diagnosis, after: Diagnosis | None = None, title: str | None = None) -> Table:
    """One row per layer; with ``after`` each measured cell reads ``before -> after``.

    ``std x`` is the activation std over the previous hidden layer's; ``|dL/dy|`` the norm of
    the gradient reaching the layer's output; ``w std / healthy`` the weight std against
    gain / sqrt(fan_in) for the activation that follows.
    """
    table = Table(title=title or ("initlab doctor: before -> after" if after else "initlab doctor"), show_lines=False)
    for col in ("layer", "kind", "units", "act"):
        table.add_column(col, overflow="fold")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    others = {s.name: s for s in after.layers} if after is not None else {}
    for s in before.layers:
        cells = []
        for cell in COLUMNS.values():
            text = cell(s)
            if after is not None:
                other = others.get(s.name)
                text = f"{text} -> {cell(other) if other else '?'}"
            cells.append(text)
        table.add_row(s.name, s.kind, str(s.units), s.activation or "-", *cells)
    return table
