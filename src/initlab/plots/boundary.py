"""Decision boundaries of a 2-D classifier: probability heat map, 0.5 contour, the data."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .style import CLASS_COLORS, styled

if TYPE_CHECKING:
    from matplotlib.contour import QuadContourSet
    from matplotlib.image import AxesImage

__all__ = ["ProbabilityGrid", "BoundaryPanel", "probability_grid", "draw_boundary", "boundary_figure", "boundaries_figure",
           "legend_handles"]


@dataclass
class ProbabilityGrid:
    """A model's class probabilities on a regular grid over a 2-D input space."""

    x: np.ndarray  # (G,) first-feature coordinates
    y: np.ndarray  # (G,) second-feature coordinates
    proba: np.ndarray  # (G, G) P(class 1) for two classes, (G, G, K) for K > 2; rows follow y


@dataclass
class BoundaryPanel:
    """One panel of a boundary figure: the grid, the points, a title and its colour."""

    grid: ProbabilityGrid
    X_train: np.ndarray  # (N, 2)
    y_train: np.ndarray  # (N,)
    X_val: np.ndarray  # (M, 2)
    y_val: np.ndarray  # (M,)
    title: str
    color: str = "black"  # of the title (the initializer's colour)
    class_names: Sequence[str] = ()


def probability_grid(model: torch.nn.Module, X: np.ndarray, size: int = 150, margin: float = 0.5) -> ProbabilityGrid:
    """Evaluate ``model.predict_proba`` on a ``size`` x ``size`` grid covering ``X`` plus ``margin``."""
    lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
    gx = np.linspace(lo[0], hi[0], size, dtype=np.float32)
    gy = np.linspace(lo[1], hi[1], size, dtype=np.float32)
    xx, yy = np.meshgrid(gx, gy)  # (G, G) each
    points = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], axis=1))  # (G*G, 2)
    predict = cast("Callable[[torch.Tensor], torch.Tensor]", model.predict_proba)  # an MLP's, duck-typed
    proba = predict(points).numpy()
    proba = proba.reshape(size, size, *proba.shape[1:])
    return ProbabilityGrid(gx, gy, np.nan_to_num(proba, nan=0.5))


def _two_class_cmap() -> LinearSegmentedColormap:
    return LinearSegmentedColormap.from_list("initlab_classes", [CLASS_COLORS[0], "#ffffff", CLASS_COLORS[1]])


def legend_handles(panel: BoundaryPanel) -> list[Line2D]:
    """Legend entries: each class's training and validation marker, and the boundary line."""
    handles = []
    for c, cname in enumerate(_class_names(panel)):
        color = CLASS_COLORS[c % len(CLASS_COLORS)]
        handles.append(Line2D([], [], ls="", marker="o", color=color, markeredgecolor="white", label=f"class {cname}, train"))
        handles.append(Line2D([], [], ls="", marker="D", markerfacecolor="none", markeredgecolor=color,
                              markeredgewidth=1.8, label=f"class {cname}, validation"))
    if panel.grid.proba.ndim == 2:
        handles.append(Line2D([], [], color="black", lw=1.5, label="P = 0.5 boundary"))
    return handles


def _class_names(panel: BoundaryPanel) -> list[str]:
    if panel.class_names:
        return list(panel.class_names)
    top = int(max(panel.y_train.max(), panel.y_val.max(initial=0)))
    return [str(c) for c in range(top + 1)]


def draw_boundary(ax: Axes, panel: BoundaryPanel, legend: bool = True) -> QuadContourSet | AxesImage:
    """Draw one panel on ``ax``; returns the heat map (for a colour bar)."""
    grid = panel.grid
    extent = (grid.x[0], grid.x[-1], grid.y[0], grid.y[-1])
    if grid.proba.ndim == 2:
        # Filled bands every 0.05 rather than a smooth image: as readable, and a small PNG.
        image: QuadContourSet | AxesImage = ax.contourf(
            grid.x, grid.y, grid.proba, levels=np.linspace(0.0, 1.0, 21), cmap=_two_class_cmap(),
            vmin=0.0, vmax=1.0, alpha=0.85)
        lo, hi = float(grid.proba.min()), float(grid.proba.max())
        if lo < 0.5 < hi:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax.contour(grid.x, grid.y, grid.proba, levels=[0.5], colors="black", linewidths=1.5)
        else:  # say so, rather than leave the reader looking for a line
            span = f"P = {lo:.3f}" if f"{lo:.3f}" == f"{hi:.3f}" else f"P between {lo:.3f} and {hi:.3f}"
            ax.text(0.02, 0.02, f"no P = 0.5 boundary in view:\n{span} everywhere",
                    transform=ax.transAxes, fontsize=7.5, va="bottom",
                    bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "#999999"})
    else:  # K classes: colour of the most probable class, paler where the model is less sure
        k = grid.proba.shape[-1]
        winner = grid.proba.argmax(-1)
        colors = np.array([to_rgb(CLASS_COLORS[c % len(CLASS_COLORS)]) for c in range(k)])
        sure = grid.proba.max(-1, keepdims=True)
        rgb = colors[winner] * sure + (1.0 - sure)  # blend to white
        image = ax.imshow(rgb, origin="lower", extent=extent, aspect="auto", alpha=0.85)
    for c in range(len(_class_names(panel))):
        color = CLASS_COLORS[c % len(CLASS_COLORS)]
        tr = panel.y_train == c
        ax.scatter(panel.X_train[tr, 0], panel.X_train[tr, 1], s=28, c=color, edgecolors="white", linewidths=0.6, zorder=3)
        va = panel.y_val == c
        ax.scatter(panel.X_val[va, 0], panel.X_val[va, 1], s=46, marker="D", facecolors="none", edgecolors=color,
                   linewidths=1.8, zorder=4)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("feature 1")
    ax.set_ylabel("feature 2")
    ax.set_title(panel.title, color=panel.color)
    if legend:
        ax.legend(handles=legend_handles(panel), loc="upper right", fontsize=7, framealpha=0.85)
    return image


@styled
def boundary_figure(panel: BoundaryPanel) -> Figure:
    """One decision-boundary figure with a colour bar for P(class 1)."""
    fig = Figure(figsize=(5.6, 4.4))
    ax = fig.subplots()
    image = draw_boundary(ax, panel)
    if panel.grid.proba.ndim == 2:
        fig.colorbar(image, ax=ax, label=f"P(class {_positive_name(panel)})", fraction=0.05, pad=0.02)
    return fig


@styled
def boundaries_figure(panels: Sequence[BoundaryPanel], suptitle: str = "Decision boundaries") -> Figure:
    """All panels side by side (at most 4 per row), sharing one colour bar."""
    n = len(panels)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.7 * cols + 0.6, 3.5 * rows + 0.5))
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for i, panel in enumerate(panels):
        ax = axes[i // cols][i % cols]
        image = draw_boundary(ax, panel, legend=False)
        if i % cols:
            ax.set_ylabel("")
        for spine in ax.spines.values():
            spine.set_edgecolor(panel.color)
            spine.set_linewidth(2)
        ax.spines["top"].set_visible(True)
        ax.spines["right"].set_visible(True)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.suptitle(suptitle)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    if panels:
        handles = legend_handles(panels[0])
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    if image is not None and panels[0].grid.proba.ndim == 2:
        fig.colorbar(image, ax=axes.ravel().tolist(), label=f"P(class {_positive_name(panels[0])})", fraction=0.02, pad=0.01)
    return fig


def _positive_name(panel: BoundaryPanel) -> str:
    return panel.class_names[1] if len(panel.class_names) > 1 else "1"
