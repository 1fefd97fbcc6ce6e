"""Training curves: loss and accuracy per epoch, training vs validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .style import styled

__all__ = ["Curves", "history_figure", "histories_figure"]

_LINESTYLES = ("-", "--", ":", "-.")


@dataclass
class Curves:
    """One run's per-epoch history (Keras names: loss, accuracy, val_loss, val_accuracy)."""

    label: str
    history: Mapping[str, Sequence[float]]
    color: str = "black"


def _loss_axis(ax: Axes) -> None:
    """Cross-entropy from 0, without an offset: a flat loss must look flat, not like noise."""
    ax.set_ylim(bottom=0.0, top=max(ax.get_ylim()[1], 0.1))
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")


@styled
def history_figure(curves: Curves, title: str | None = None) -> Figure:
    """Two panels, loss and accuracy; training solid, validation dashed, in the run's colour."""
    fig = Figure(figsize=(8.4, 3.3))
    ax_loss, ax_acc = fig.subplots(1, 2)
    h = curves.history
    for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
        values = h.get(key, [])
        epochs = range(1, len(values) + 1)
        ax.plot(epochs, values, color=curves.color, lw=1.8, label="training")
        if h.get(f"val_{key}"):
            ax.plot(epochs, h[f"val_{key}"], color=curves.color, lw=1.8, ls="--", alpha=0.8, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend(loc="best")
    _loss_axis(ax_loss)
    ax_loss.set_title("loss (cross-entropy)")
    ax_acc.set_title("accuracy")
    ax_acc.set_ylim(-0.02, 1.02)
    fig.suptitle(title or curves.label)
    fig.tight_layout()
    return fig


@styled
def histories_figure(runs: Sequence[Curves], title: str = "Training curves") -> Figure:
    """Every run in one figure: training loss and validation accuracy per epoch.

    Runs that share a colour (the same initializer) get different line styles.
    """
    fig = Figure(figsize=(9.6, 3.6))
    ax_loss, ax_acc = fig.subplots(1, 2)
    seen: dict[str, int] = {}
    for run in runs:
        style = _LINESTYLES[seen.get(run.color, 0) % len(_LINESTYLES)]
        seen[run.color] = seen.get(run.color, 0) + 1
        loss = run.history.get("loss", [])
        acc = run.history.get("val_accuracy") or run.history.get("accuracy", [])
        ax_loss.plot(range(1, len(loss) + 1), loss, color=run.color, ls=style, lw=1.8, label=run.label)
        ax_acc.plot(range(1, len(acc) + 1), acc, color=run.color, ls=style, lw=1.8, label=run.label)
    _loss_axis(ax_loss)
    has_val = any(run.history.get("val_accuracy") for run in runs)
    ax_loss.set(title="training loss", xlabel="epoch", ylabel="loss")
    ax_acc.set(title="validation accuracy" if has_val else "training accuracy", xlabel="epoch", ylabel="accuracy",
               ylim=(-0.02, 1.02))
    ax_acc.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
