"""Figures of diagnoses and monitors (matplotlib ``Figure`` objects; save with ``plots.style.save``).

- :func:`layer_histograms`: activation values and back-propagated gradients per layer,
  overlaid densities coloured by depth, as Glorot & Bengio (2010, figures 6 and 7) show them;
  one column per snapshot (a monitor's steps, or diagnoses side by side).
- :func:`heatmap_figure`: the summary view of a monitor, layers x recorded steps, for the
  activation std and the back-propagated gradient norm (log10 colour scale).
- :func:`depth_profile`: activation std and gradient norm against depth for one or more
  diagnoses (before and after a re-initialization, say).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..plots.style import init_color, styled
from .diagnose import Diagnosis, depth_chains, hidden_weighted
from .monitor import Monitor

if TYPE_CHECKING:
    from matplotlib.cm import ScalarMappable

__all__ = ["layer_histograms", "heatmap_figure", "heatmap_data", "rounding_floor", "depth_profile", "shown_snapshots"]

DEPTH_CMAP = "viridis"  # first layer dark, last layer yellow
BINS = 41
FALLBACK_COLORS = ("#7f7f7f", "#000000", "#bcbd22", "#8c564b")
MAX_LEGEND = 8  # more layers than this get a depth colour bar instead of a legend
MAX_CURVES = 10  # deeper nets show this many layers, evenly spaced in depth
ZERO_NOTE = 0.05  # a layer with more exact zeros than this gets them noted


def _hidden_names(layers: Sequence[tuple[str, bool]]) -> list[str]:
    """Names of every row except the output layer (the last weighted one)."""
    weighted = [n for n, w in layers if w]
    output = weighted[-1] if len(weighted) > 1 else None
    return [n for n, _ in layers if n != output]


def shown_snapshots(snapshots: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The histogram snapshots a figure shows: all of them, or the first, middle and last kept."""
    snaps = list(snapshots)
    return [snaps[0], snaps[len(snaps) // 2], snaps[-1]] if len(snaps) > 3 else snaps


def _columns(
    source: Diagnosis | Mapping[str, Diagnosis] | Monitor,
) -> list[tuple[str, dict[str, dict[str, np.ndarray]], list[str]]]:
    """``[(title, {layer: {"activation", "gradient"}}, hidden layer names)]`` for any source."""
    if isinstance(source, Diagnosis):
        source = {"at initialization": source}
    if isinstance(source, Monitor):
        names = _hidden_names([(n, i["weighted"]) for n, i in source.layer_info.items()])
        snaps = shown_snapshots(source.snapshots)
        return [(f"step {s['step']}" + (" (init)" if i == 0 else ""), s["layers"], names) for i, s in enumerate(snaps)]
    out = []
    for label, diag in source.items():
        names = _hidden_names([(s.name, s.weighted) for s in diag.layers])
        out.append((str(label), diag.samples, names))
    return out


def _density(ax: Axes, per_layer: list[tuple[str, np.ndarray]], kind: str, colors: Sequence[Any]) -> None:
    # Exact zeros (ReLU's off units, and the gradients they block) would dwarf the rest of the
    # curve: they are left out and their share is written in the legend and in the panel.
    per_layer = [(name, v[np.isfinite(v)]) for name, v in per_layer]
    zeros = [float(np.mean(v == 0)) if v.size else 0.0 for _, v in per_layer]
    nonzero = [v[v != 0] for _, v in per_layer]
    pooled = np.concatenate(nonzero) if nonzero else np.zeros(0)
    if kind == "activation":
        lo, hi = np.percentile(pooled, [0.1, 99.9]) if pooled.size else (-1.0, 1.0)
    else:
        hi = float(np.percentile(np.abs(pooled), 99.5)) if pooled.size else 1.0
        lo = -hi
    if not hi > lo:
        lo, hi = lo - 1.0, hi + 1.0
    # about sqrt(n) bins per curve: a 32-sample minibatch of a small layer gets a smooth curve too
    per_curve = min((v.size for v in nonzero if v.size), default=BINS**2)
    edges = np.linspace(lo, hi, int(np.clip(np.sqrt(per_curve), 8, BINS)))
    centers = (edges[:-1] + edges[1:]) / 2
    for (name, _), values, zero, color in zip(per_layer, nonzero, zeros, colors, strict=False):
        if values.size == 0:
            continue
        hist, _ = np.histogram(values, bins=edges)
        label = f"{name} ({zero:.0%} zeros)" if zero > ZERO_NOTE else name
        ax.plot(centers, hist / values.size, color=color, lw=1.3, label=label)
    if not any(v.size for v in nonzero):
        ax.text(0.5, 0.5, "every value is exactly 0", transform=ax.transAxes, ha="center", va="center",
                fontsize=10, color="#444444")
    elif zeros and max(zeros) > ZERO_NOTE and len(per_layer) > MAX_LEGEND:  # else the legend says it
        ax.text(0.02, 0.97, f"exact zeros not drawn ({min(zeros):.0%}-{max(zeros):.0%} per layer)",
                transform=ax.transAxes, va="top", fontsize=8, color="#444444")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    ax.set_ylabel("fraction of nonzero values")
    ax.set_xlabel("activation value" if kind == "activation" else "dL/d(pre-activation)")


def _spread(names: list[str], most: int) -> list[str]:
    """At most ``most`` names, evenly spaced, first and last included."""
    if len(names) <= most:
        return names
    keep = np.unique(np.linspace(0, len(names) - 1, most).round().astype(int))
    return [names[i] for i in keep]


@styled
def layer_histograms(source: Diagnosis | Mapping[str, Diagnosis] | Monitor, title: str | None = None) -> Figure:
    """Per-layer histograms of activations (top row) and back-propagated gradients (bottom row).

    ``source``: a :class:`Diagnosis` (one column), a mapping ``label -> Diagnosis`` (a column
    each, e.g. before/after), or a :class:`Monitor` (its first, middle and last histogram
    snapshot). Glorot & Bengio (2010), figures 6-7.
    """
    columns = _columns(source)
    n = max(1, len(columns))
    fig = Figure(figsize=(4.6 * n, 6.4), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    n_layers = max((len(names) for _, _, names in columns), default=1)
    cmap, norm = colormaps[DEPTH_CMAP], Normalize(1, max(2, n_layers))
    for j, (label, samples, names) in enumerate(columns):
        depth = {nm: i + 1 for i, nm in enumerate(names)}
        names = _spread([nm for nm in names if nm in samples], MAX_CURVES)
        colors = [cmap(norm(depth[nm])) for nm in names]
        for row, kind in enumerate(("activation", "gradient")):
            ax = axes[row, j]
            _density(ax, [(nm, samples[nm][kind]) for nm in names], kind, colors)
            ax.set_title(f"{'activations' if kind == 'activation' else 'back-propagated gradients'}, {label}")
            if len(names) <= MAX_LEGEND and ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper right", frameon=False, fontsize=7)
    if n_layers > MAX_LEGEND:
        bar = fig.colorbar(_mappable(cmap, norm), ax=axes.ravel().tolist(), shrink=0.6)
        bar.set_label("layer depth (1 = first)")
    fig.suptitle(title or "Activation and gradient histograms per layer")
    return fig


def _mappable(cmap: Colormap, norm: Normalize) -> ScalarMappable:
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


def _log10(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, np.log10(np.where(a > 0, a, 1.0)), np.nan)


# An activation std at or below this many float32 epsilons of the layer's |mean| is rounding: the
# units all output one value, and float32 sums over the batch leave ~1 eps of relative noise (a
# zero-initialized ReLU net's output layer measures std/|mean| = 6e-8 to 1.3e-7, i.e. 0.5-1 eps).
ROUNDING_EPS = 8
ZERO_COLOR = "#d0d0d0"


def rounding_floor(monitor: Monitor, stat: str) -> np.ndarray:
    """Per cell, the largest value of ``stat`` that is float32 rounding rather than signal:
    ``ROUNDING_EPS * eps32 * |mean|`` for the activation std, 0 for anything else."""
    if stat != "std":
        return np.zeros((len(monitor.layer_names), len(monitor.records)))
    floor: np.ndarray = ROUNDING_EPS * float(np.finfo(np.float32).eps) * np.abs(np.nan_to_num(monitor.series("mean")))
    return floor


def heatmap_data(monitor: Monitor, stat: str) -> np.ndarray:
    """log10 of ``stat`` per layer and recorded step; nan (drawn in the zero colour) where the value is
    exactly 0, at rounding level (see :func:`rounding_floor`) or not recorded."""
    values = monitor.series(stat)
    values = np.where(values > rounding_floor(monitor, stat), values, 0.0)
    return _log10(values)


@styled
def heatmap_figure(monitor: Monitor, title: str | None = None) -> Figure:
    """Layers x recorded steps: log10 activation std (left) and log10 gradient norm reaching
    each layer's output (right). One picture instead of a panel per layer. Cells that are exactly 0,
    or an activation std at float32 rounding level of the layer's mean, are drawn grey (``ZERO_COLOR``)."""
    names = monitor.layer_names
    steps = monitor.steps
    fig = Figure(figsize=(11, 1.4 + 0.28 * max(4, len(names))), layout="constrained")
    axes = fig.subplots(1, 2, squeeze=False)[0]
    panels = (("std", "log10 activation std"), ("output_grad_norm", "log10 |dL/d(layer output)|"))
    cmap = colormaps["magma"].with_extremes(bad=ZERO_COLOR)
    for ax, (stat, label) in zip(axes, panels, strict=False):
        data = np.ma.masked_invalid(heatmap_data(monitor, stat))
        image = ax.imshow(data, aspect="auto", interpolation="nearest", cmap=cmap,
                          extent=(-0.5, len(steps) - 0.5, len(names) - 0.5, -0.5))
        zero_note = "grey: 0 or float32 rounding" if stat == "std" else "grey: exactly 0"
        if data.mask.all():  # nothing but zeros: no colour scale to read
            ax.text(0.5, 0.5, f"every cell is {zero_note[6:]}", transform=ax.transAxes, ha="center",
                    va="center", fontsize=10, color="#222222")
        else:
            fig.colorbar(image, ax=ax).set_label(f"{label}\n({zero_note})", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=7 if len(names) > 12 else 9)
        ticks: Sequence[int] | np.ndarray = (
            np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).round().astype(int)) if steps else [])
        ax.set_xticks(ticks, [str(steps[t]) for t in ticks])
        ax.set_xlabel("training step")
        ax.set_ylabel("layer")
        ax.set_title(label)
    fig.suptitle(title or f"Per-layer statistics during training (recorded every {monitor.every} steps)")
    return fig


@styled
def depth_profile(diagnoses: Mapping[str, Diagnosis] | Diagnosis, title: str | None = None) -> Figure:
    """Activation std and back-propagated gradient norm against depth, a line per diagnosis.

    Labels that name an initializer (``"he_normal"``) take its colour from ``plots.style``. A
    model with repeated blocks (a transformer) gets one line per layer role against the block
    index, plus the residual stream after each block, so that like is drawn with like.
    """
    if isinstance(diagnoses, Diagnosis):
        diagnoses = {"model": diagnoses}
    if any(any("*" in c[0].role for c in depth_chains(d.layers)) for d in diagnoses.values()):
        return _role_profile(diagnoses, title)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    used: set[str] = set()
    for i, (label, diag) in enumerate(diagnoses.items()):
        chain = hidden_weighted(diag.layers)
        depth = np.arange(1, len(chain) + 1)
        color = init_color(str(label))
        if color in used:  # two labels that are not initializer names: keep them apart
            color = FALLBACK_COLORS[i % len(FALLBACK_COLORS)]
        used.add(color)
        for ax, values in zip(axes, ([s.std for s in chain], [s.output_grad_norm for s in chain]), strict=False):
            ax.plot(depth, np.where(np.asarray(values) > 0, values, np.nan), marker="o", ms=3, color=color,
                    label=f"{label}: {', '.join(diag.codes)}")
    for ax, what in zip(axes, ("activation std", "|dL/d(layer output)|"), strict=False):
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("hidden layer (depth)")
        ax.set_ylabel(what)
        ax.set_title(f"{what} across depth")
        ax.legend(frameon=False, fontsize=8)
    fig.suptitle(title or "Signal across depth, forward and backward")
    return fig


LINESTYLES = ("-", "--", ":", "-.")


def _role_profile(diagnoses: Mapping[str, Diagnosis], title: str | None) -> Figure:
    """Per layer role across blocks (colour: role; line style: diagnosis), and the residual stream (black)."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    cmap = colormaps["tab10"]
    roles: dict[str, int] = {}
    for i, (label, diag) in enumerate(diagnoses.items()):
        style = LINESTYLES[i % len(LINESTYLES)]
        for chain in depth_chains(diag.layers):
            role = chain[0].role
            first = role not in roles
            color = cmap(roles.setdefault(role, len(roles)) % 10)
            depth = np.arange(len(chain))
            for ax, values in zip(axes, ([s.std for s in chain], [s.output_grad_norm for s in chain]), strict=False):
                ax.plot(depth, np.where(np.asarray(values) > 0, values, np.nan), style, marker="o", ms=3,
                        color=color, label=role if first else None)
        if diag.blocks:
            depth = np.arange(len(diag.blocks))
            stream = "output of each block (the stream it hands on)" if i == 0 else None
            axes[0].plot(depth, [b["output_std"] for b in diag.blocks], style, color="black", lw=2, label=stream)
            axes[1].plot(depth, [b["output_grad_norm"] or np.nan for b in diag.blocks], style, color="black", lw=2,
                         label=stream)
        if len(diagnoses) > 1:  # one legend entry per line style
            axes[1].plot([], [], style, color="gray", label=f"{label}: {', '.join(diag.codes)}")
    for ax, what in zip(axes, ("activation std", "|dL/d(layer output)|"), strict=False):
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("block")
        ax.set_ylabel(what)
        ax.set_title(f"{what} per layer role across blocks")
    axes[1].legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title or "Signal across blocks, one line per layer role (like with like)")
    return fig
