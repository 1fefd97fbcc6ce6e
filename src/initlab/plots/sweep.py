"""Sweep figures: heat maps of a metric over two parameters, and learning curves with seed bands."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._validation import ValidationError, check_choice, did_you_mean
from .style import init_color, styled

__all__ = ["heatmap", "learning_curves"]


def _check_columns(df: pd.DataFrame, *cols: str) -> None:
    for col in cols:
        if col not in df:
            raise ValidationError(f"unknown column {col!r}{did_you_mean(col, df.columns)}")
    if df.empty:
        raise ValidationError("the store has no runs to plot")


@styled
def heatmap(df: pd.DataFrame, value: str = "val_accuracy", rows: str = "init", cols: str = "depth",
            panel: str = "activation", title: str | None = None) -> Figure:
    """One heat map per ``panel`` value: ``rows`` x ``cols`` coloured by the mean of ``value``.

    The mean runs over seeds and over every other parameter (say so in the title when it does);
    each cell is annotated with its mean, and ``n`` runs. Returns the Figure.
    """
    _check_columns(df, value, rows, cols, panel)
    panels = sorted(df[panel].unique(), key=str)
    row_vals = sorted(df[rows].unique(), key=str) if rows != "init" else list(dict.fromkeys(df[rows]))
    col_vals = sorted(df[cols].unique())
    vmin, vmax = float(np.nanmin(df[value])), float(np.nanmax(df[value]))
    fig = Figure(figsize=(1.2 + 0.9 * len(col_vals) * len(panels) + 1.2 * len(panels), 0.9 + 0.45 * len(row_vals)))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)
    image = None
    for ax, key in zip(axes[0], panels, strict=False):
        part = df[df[panel] == key]
        table = part.pivot_table(index=rows, columns=cols, values=value, aggfunc="mean").reindex(index=row_vals, columns=col_vals)
        image = ax.imshow(table.to_numpy(dtype=float), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if v < (vmin + vmax) / 2 else "black")
        ax.set_xticks(range(len(col_vals)), [str(c) for c in col_vals])
        ax.set_yticks(range(len(row_vals)), [str(r) for r in row_vals])
        if rows == "init":
            for label in ax.get_yticklabels():
                label.set_color(init_color(label.get_text()))
        ax.set_xlabel(cols)
        ax.set_title(f"{panel} = {key}")
    axes[0][0].set_ylabel(rows)
    varying = [c for c in ("width", "depth", "learning_rate", "optimizer", "init", "activation")
               if c in df and c not in (rows, cols, panel) and df[c].nunique() > 1]
    over = "seeds" + "".join(f" and {c} in {{{', '.join(str(v) for v in sorted(df[c].unique(), key=str))}}}" for c in varying)
    fig.suptitle(title or f"{value.replace('_', ' ')} (mean over {over})", y=1.06)
    assert image is not None  # one per panel; fig.subplots refuses zero panels
    fig.colorbar(image, ax=axes[0].tolist(), label=value.replace("_", " "), shrink=0.9)
    return fig


@styled
def learning_curves(df: pd.DataFrame, metric: str = "val_accuracy", by: str = "init", panel: str = "activation",
                    where: dict[str, Any] | None = None, title: str | None = None) -> Figure:
    """Mean learning curve per ``by`` value with a band of +-1 std over the runs (seeds), a panel per ``panel``.

    ``df`` needs the ``history`` column (``initlab.results.load(store, history=True)``); ``where``
    filters it first, e.g. ``{"depth": 2, "width": 10}``.
    """
    _check_columns(df, "history", by, panel)
    for key, val in (where or {}).items():
        _check_columns(df, key)
        df = df[df[key] == val]
    if df.empty:
        raise ValidationError(f"no runs match {where}")
    recorded = list(dict.fromkeys(k for h in df["history"] if h for k in h))  # e.g. loss, accuracy, val_loss, ...
    check_choice("metric", metric, recorded)
    panels = sorted(df[panel].unique(), key=str)
    fig = Figure(figsize=(4.2 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)
    for ax, key in zip(axes[0], panels, strict=False):
        part = df[df[panel] == key]
        for name in dict.fromkeys(part[by]):
            curves = [h.get(metric) for h in part[part[by] == name]["history"] if h and h.get(metric)]
            if not curves:
                continue
            width = max(len(c) for c in curves)
            data = np.array([[np.nan if v is None else v for v in c] + [np.nan] * (width - len(c)) for c in curves])
            mean, std = np.nanmean(data, axis=0), np.nanstd(data, axis=0)
            epochs = np.arange(1, width + 1)
            color = init_color(str(name)) if by == "init" else None
            line, = ax.plot(epochs, mean, color=color, label=f"{name} (n={len(curves)})")
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_title(f"{panel} = {key}")
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel(metric.replace("_", " "))
    axes[0][-1].legend(loc="best", fontsize=8)
    filt = ", ".join(f"{k}={v}" for k, v in (where or {}).items())
    fig.suptitle(title or f"{metric.replace('_', ' ')}: mean and ±1 std over seeds" + (f" ({filt})" if filt else ""))
    fig.tight_layout()
    return fig
