"""The figures of a transfer grid (plain matplotlib Figures, drawn in initlab's style)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..plots.style import styled

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .run import TransferResult

__all__ = ["loss_figure", "drift_figure", "size_colors"]

PARAM_COLORS = {"sp": "#c44e52", "mup": "#3b6fb6", "umup": "#4aa05a", "depth-mup": "#8172b2", "completep": "#e0802c"}


def size_colors(sizes: list[int]) -> dict[int, tuple[float, float, float, float]]:
    """One colour per width (or depth), the same in every panel: viridis from small to large."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return {k: cmap(0.9 * i / max(1, len(sizes) - 1)) for i, k in enumerate(sizes)}


@styled
def loss_figure(result: TransferResult, axis: str = "width") -> Figure:
    """A panel per parametrization, a curve per size: mean over seeds of the loss against log2 lr,
    the best lr (parabola vertex) marked with a star; diverged cells are left out of the mean."""
    from matplotlib.figure import Figure

    s = result.settings
    names = s["parametrizations"]
    sizes = s["widths"] if axis == "width" else s["depths"]
    colors = size_colors(sizes)
    fig = Figure(figsize=(3.6 * len(names) + 1.4, 3.6), layout="constrained")
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    drifts = {(d.parametrization, d.axis): d for d in result.drift}
    for ax, name in zip(axes, names, strict=True):
        table = result.losses(name, axis)
        x = np.log2(np.array(s["lrs"][name]))
        d = drifts.get((name, axis))
        for j, k in enumerate(sizes):
            losses = table[k]
            with np.errstate(all="ignore"):
                mean = np.exp(np.nanmean(np.log(np.where(losses > 0, losses, np.nan)), axis=0))
            ok = np.isfinite(mean)
            ax.plot(x[ok], mean[ok], "o-", ms=2.5, lw=1.3, color=colors[k], label=f"{axis} {k}")
            if d is not None and math.isfinite(d.best_log2_lr[j]):
                bx = d.best_log2_lr[j]
                by = float(np.exp(np.interp(bx, x[ok], np.log(mean[ok])))) if ok.any() else np.nan
                ax.plot([bx], [by], marker="*", ms=11, color=colors[k], markeredgecolor="black", markeredgewidth=0.6,
                        zorder=5)
        ax.set_yscale("log")
        ax.set_xlabel("log2 learning rate (Adam)")
        title = name
        if d is not None and d.octaves_per_doubling == d.octaves_per_doubling:
            title += f"\ndrift {d.octaves_per_doubling:+.2f} oct/doubling: {d.verdict}"
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel(f"training loss after {s['steps']} steps")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8,
                    title="star: best lr", title_fontsize=8)
    fixed = f"depth {s['depths'][0]}" if axis == "width" else f"width {s['widths'][0]}"
    fig.suptitle(f"Loss vs learning rate across {axis}: {s['family'] if s['family'] != 'factory' else s['factory']} "
                 f"on {s['task']}, {fixed}, mean of {len(s['seeds'])} seeds")
    return fig


@styled
def drift_figure(result: TransferResult) -> Figure:
    """Best log2 lr (95% bootstrap interval over seeds) against log2 size, a line per parametrization
    with its fitted drift in the legend; a panel per axis."""
    from matplotlib.figure import Figure

    s = result.settings
    axes_names = ["width"] + (["depth"] if len(s["depths"]) > 1 else [])
    fig = Figure(figsize=(5.2 * len(axes_names) + 1.0, 3.8), layout="constrained")
    axes = fig.subplots(1, len(axes_names), squeeze=False)[0]
    for ax, axis in zip(axes, axes_names, strict=True):
        shown = [d for d in result.drift if d.axis == axis]
        for i, d in enumerate(shown):
            color = PARAM_COLORS.get(d.parametrization, "#7f7f7f")
            # a small sideways offset per parametrization, so equal points (muP and CompleteP at base depth) both show
            lx = np.log2(np.array(d.sizes, float)) + 0.04 * (i - (len(shown) - 1) / 2)
            best = np.array(d.best_log2_lr)
            lo = best - np.array([a for a, _ in d.best_interval])
            hi = np.array([b for _, b in d.best_interval]) - best
            ax.errorbar(lx, best, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt="o", ms=4, capsize=3, color=color)
            if math.isfinite(d.octaves_per_doubling):
                fit = np.polyfit(lx, best, 1)
                a, b = d.interval
                ax.plot(lx, np.polyval(fit, lx), "-", color=color, lw=1.4,
                        label=f"{d.parametrization}: {d.octaves_per_doubling:+.2f} [{a:+.2f}, {b:+.2f}] {d.verdict}")
        ax.set_xticks(np.log2(np.array(shown[0].sizes, float)), [str(k) for k in shown[0].sizes])
        ax.set_xlabel(f"{axis} (log2 scale)")
        ax.set_ylabel("best log2 learning rate")
        ax.set_title(f"drift of the best lr, octaves per doubling of {axis}", fontsize=10)
        ax.legend(loc="best", fontsize=8, frameon=False, title="slope [95% interval] verdict", title_fontsize=8)
    fig.suptitle(f"Best learning rate vs {' and '.join(axes_names)} "
                 f"(transfers: the interval within +-{s['tolerance']:g} octave per doubling)")
    return fig
