"""Theory figures: phase diagram, predicted trainable depth, accuracy map, variance check.

Every function returns a matplotlib Figure (save it with ``initlab.plots.save``); colours of
initializers come from ``initlab.plots.style``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib import colors, patheffects
from matplotlib.figure import Figure

from .._validation import DataError, ValidationError
from ..plots.style import init_color, styled
from .bridge import VarianceCheck, as_init_spec, effective_sigma_b2, effective_sigma_w2
from .meanfield import Activation, MeanField, critical_sigma_w2, resolve_activation

if TYPE_CHECKING:
    import pandas as pd

    from ..initializers._gauss import Kernel

__all__ = ["MARKED_INITS", "phase_diagram", "trainable_depth_plot", "accuracy_heatmap", "variance_check_plot", "xi_c_grid"]

# Named schemes drawn on the figures (with zero biases, apply_init's default, unless told otherwise).
MARKED_INITS = ("glorot_normal", "lecun_normal", "he_normal", "orthogonal")
_XI_MAX = 1000.0  # colour scale ceiling; xi_c = inf on the critical line


def _finite(x: float) -> float:
    return x if math.isfinite(x) else np.nan


def xi_c_grid(activation: Activation | Kernel, sigma_w2: np.ndarray, sigma_b2: np.ndarray) -> np.ndarray:
    """xi_c on the grid: an array (len(sigma_b2), len(sigma_w2)), inf on the critical line."""
    kernel = resolve_activation(activation)
    return np.array([[MeanField(kernel, w, b).xi_c for w in sigma_w2] for b in sigma_b2])


def _init_groups(inits: Sequence[str], fan: int = 512) -> list[tuple[float, list[str]]]:
    """Named inits grouped by their sigma_w2 on a square layer (several share sigma_w2 = 1)."""
    groups: dict[float, list[str]] = {}
    for name in inits:
        groups.setdefault(round(effective_sigma_w2(name, fan, fan), 6), []).append(name)
    return sorted(groups.items())


@styled
def phase_diagram(
    activation: Activation = "tanh",
    sigma_w2: tuple[float, float] = (0.5, 4.0),
    sigma_b2: tuple[float, float] = (0.0, 0.3),
    resolution: tuple[int, int] = (80, 32),
    inits: Sequence[str] = MARKED_INITS,
    bias_init: Any = "zeros",
    fan: int = 512,
) -> Figure:
    """The sigma_w2 x sigma_b2 plane coloured by the correlation depth scale xi_c (log scale).

    The critical line chi_1 = 1 (where xi_c diverges) is drawn, with the ordered phase left of
    it and the chaotic phase right; named initializers are marked at their sigma_w2 on a
    square layer of ``fan`` units and at the sigma_b2 of ``bias_init`` (default zeros,
    ``apply_init``'s; see :func:`~initlab.theory.effective_sigma_b2`). Schoenholz et al. 2017, Fig. 1.
    """
    kernel = resolve_activation(activation)
    ws = np.linspace(*sigma_w2, resolution[0])
    bs = np.linspace(*sigma_b2, resolution[1])
    xi = np.clip(xi_c_grid(kernel, ws, bs), 0.1, _XI_MAX)
    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(ws, bs, xi, shading="gouraud", cmap="viridis",
                         norm=colors.LogNorm(vmin=max(0.1, float(np.nanmin(xi))), vmax=_XI_MAX))
    cbar = fig.colorbar(mesh, ax=ax)
    cbar.set_label(rf"correlation depth scale $\xi_c$ (layers, log scale; capped at {_XI_MAX:g})")
    fine_b = np.linspace(*sigma_b2, 60)
    crit = [_critical_or_nan(kernel, b) for b in fine_b]
    ax.plot(crit, fine_b, color="white", lw=2.5, ls="--", label=r"critical line $\chi_1 = 1$ (`critical` init)")
    b0 = effective_sigma_b2(bias_init, fan, fan)
    for w, names in _init_groups(inits, fan):
        ax.plot([w], [b0], marker="o", ms=11, color=init_color(names[0]), mec="white", mew=1.5,
                clip_on=False, zorder=5, ls="none",
                label=f"{' = '.join(names)}: $\\sigma_w^2$={w:g}, $\\sigma_b^2$={b0:g}")
    ax.set_xlim(*sigma_w2)
    ax.set_ylim(min(sigma_b2[0], b0), max(sigma_b2[1], b0))
    ax.set_xlabel(r"weight variance $\sigma_w^2$  (Var $W_{ij}$ = $\sigma_w^2$ / fan_in)")
    ax.set_ylabel(r"bias variance $\sigma_b^2$")
    ax.set_title(f"Order-to-chaos phase diagram, {kernel.name}\n"
                 "left of the line: ordered ($\\chi_1<1$); right: chaotic ($\\chi_1>1$)")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    return fig


def _critical_or_nan(kernel: Kernel, b: float) -> float:
    try:
        return critical_sigma_w2(kernel, b)
    except ValidationError:
        return np.nan


@styled
def trainable_depth_plot(
    activation: Activation = "tanh",
    sigma_b2: Sequence[float] = (0.0, 0.05, 0.2),
    sigma_w2: tuple[float, float] = (0.5, 4.0),
    points: int = 120,
    inits: Sequence[str] = MARKED_INITS,
) -> Figure:
    """Predicted maximum trainable depth 6 xi_c against sigma_w2, one curve per sigma_b2.

    Schoenholz et al. 2017 (section 5): networks deeper than about 6 xi_c do not train; the
    bound diverges at the critical sigma_w2 (dotted lines).
    """
    kernel = resolve_activation(activation)
    ws = np.linspace(*sigma_w2, points)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    # sigma_b2 curves in shades of one neutral colormap, so they never look like an
    # initializer's colour (those mark the vertical bands).
    shades = matplotlib.colormaps["copper"](np.linspace(0.0, 0.75, max(len(sigma_b2), 1)))
    for i, b in enumerate(sigma_b2):
        depth = np.array([_finite(6 * MeanField(kernel, w, b).xi_c) for w in ws])
        line, = ax.plot(ws, depth, lw=2, label=f"$\\sigma_b^2$ = {b:g}", color=shades[i])
        crit = _critical_or_nan(kernel, b)
        if math.isfinite(crit):
            ax.axvline(crit, color=line.get_color(), ls=":", lw=1.2)
    for w, names in _init_groups(inits):
        ax.axvline(w, color=init_color(names[0]), lw=6, alpha=0.25, label=f"{' = '.join(names)} ($\\sigma_w^2$={w:g})")
    ax.set_yscale("log")
    ax.set_xlim(*sigma_w2)
    ax.set_xlabel(r"weight variance $\sigma_w^2$")
    ax.set_ylabel(r"predicted trainable depth $6\,\xi_c$ (layers)")
    ax.set_title(f"Predicted trainable depth, {kernel.name} (dotted: critical $\\sigma_w^2$)")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.85)
    return fig


def _spec_sigma_w2(spec: Any, fan: int) -> float:
    return effective_sigma_w2(as_init_spec(spec), fan, fan)


def load_runs_csv(path: str | Path) -> pd.DataFrame:
    """A CSV of runs (one row per run) for :func:`accuracy_heatmap`; a missing or unreadable file is a DataError."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"results file {str(path)!r} not found")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = "it is empty" if isinstance(err, pd.errors.EmptyDataError) else str(err).splitlines()[0][:120]
        raise DataError(f"results file {str(path)!r} is not a readable CSV: {reason}") from None


@styled
def accuracy_heatmap(
    frame: pd.DataFrame,
    activation: Activation | None = None,
    sigma_b2: float | None = None,
    metric: str = "val_accuracy",
    width: int = 100,
) -> Figure:
    """Measured accuracy over depth x sigma_w2 with the predicted 6 xi_c curve on top.

    ``frame`` is a pandas DataFrame with columns ``depth``, ``metric`` (default
    ``val_accuracy``) and either ``sigma_w2`` or ``init`` (a name, spec dict or JSON spec,
    turned into sigma_w2 on a square layer of ``width``, or the ``width`` column). Runs with
    the same (depth, sigma_w2) are averaged. ``activation`` defaults to the frame's single
    ``activation``. ``sigma_b2`` (the bias variance of the theory curve) defaults to the
    frame's ``sigma_b2`` column, else to each run's bias variance read off its ``bias_init``
    column (:func:`~initlab.theory.effective_sigma_b2`: zeros 0, normal std s -> s^2, critical
    -> its sigma_b2, ...), else 0 (``apply_init``'s zero biases). The runs must share one value.
    """
    df = frame.copy()
    missing = [c for c in ("depth", metric) if c not in df.columns]
    if missing or ("sigma_w2" not in df.columns and "init" not in df.columns):
        raise ValidationError(
            f"accuracy map needs columns depth, {metric} and sigma_w2 (or init); got {list(df.columns)}"
        )
    if "sigma_w2" not in df.columns:
        fans = df["width"] if "width" in df.columns else [width] * len(df)
        df["sigma_w2"] = [_spec_sigma_w2(s, int(f)) for s, f in zip(df["init"], fans, strict=False)]
    activation = _single(df, "activation", activation)
    if activation is None:
        raise ValidationError("accuracy map needs an activation (argument or a single-valued 'activation' column)")
    if sigma_b2 is None and "sigma_b2" not in df.columns and "bias_init" in df.columns:
        fans = df["width"] if "width" in df.columns else [width] * len(df)
        df["sigma_b2"] = [round(effective_sigma_b2(b, int(f), int(f)), 12) for b, f in zip(df["bias_init"], fans, strict=False)]
    b = _single(df, "sigma_b2", sigma_b2)
    b = 0.0 if b is None else float(b)
    table = df.pivot_table(index="depth", columns="sigma_w2", values=metric, aggfunc="mean").sort_index()
    ws, ds = table.columns.to_numpy(float), table.index.to_numpy(float)
    log_w, log_d = _geometric(ws), _geometric(ds)
    fig = Figure(figsize=(6.8, 4.6))
    ax = fig.add_subplot()
    values = table.to_numpy()
    mesh = ax.pcolormesh(_edges(ws, log_w), _edges(ds, log_d), values, shading="flat", cmap="magma")
    fig.colorbar(mesh, ax=ax).set_label(f"measured {metric.replace('_', ' ')} (mean over runs)")
    if values.size <= 80:  # small grids: print each cell's value
        lo, hi = np.nanmin(values), np.nanmax(values)
        for (i, d), (j, w) in ((a, b_) for a in enumerate(ds) for b_ in enumerate(ws)):
            v = values[i, j]
            if np.isfinite(v):
                light = (v - lo) / (hi - lo + 1e-12) > 0.6
                ax.text(w, d, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if light else "white")
    kernel = resolve_activation(activation)
    fine = np.geomspace(ws.min(), ws.max(), 300) if log_w else np.linspace(ws.min(), ws.max(), 300)
    depth = np.array([_finite(6 * MeanField(kernel, w, b).xi_c) for w in fine])
    ax.plot(fine, depth, color="#00e5ff", lw=2.5, label=f"predicted $6\\,\\xi_c$ ($\\sigma_b^2$={b:g})")
    crit = _critical_or_nan(kernel, b)
    if math.isfinite(crit) and ws.min() <= crit <= ws.max():
        ax.axvline(crit, color="white", ls="--", lw=1.4, label=f"critical $\\sigma_w^2$ = {crit:.3g}",
                   path_effects=[patheffects.withStroke(linewidth=2.6, foreground="#555555")])
    edges_w, edges_d = _edges(ws, log_w), _edges(ds, log_d)
    ax.set_xlim(edges_w[0], edges_w[-1])
    ax.set_ylim(edges_d[0], edges_d[-1])
    if log_w:
        ax.set_xscale("log")
        ax.set_xticks(ws, [f"{w:g}" for w in ws])
    if log_d:
        ax.set_yscale("log")
        ax.set_yticks(ds, [f"{d:g}" for d in ds])
    ax.minorticks_off()
    ax.set_xlabel(r"weight variance $\sigma_w^2$")
    ax.set_ylabel("depth L (layers)")
    ax.set_title(f"Measured {metric.replace('_', ' ')} vs predicted trainable depth, {kernel.name}", pad=24)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    return fig


def _geometric(values: np.ndarray) -> bool:
    """True when sorted positive values are spaced more evenly in log than in linear scale."""
    if len(values) < 3 or values.min() <= 0:
        return False
    return bool(np.std(np.diff(np.log(values))) < np.std(np.diff(values)) / np.mean(values))


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres: midpoints (geometric when ``log``), ends mirrored."""
    v = np.log(values) if log else values.astype(float)
    if len(v) == 1:
        e = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        mid = (v[1:] + v[:-1]) / 2
        e = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    return np.exp(e) if log else e


def _single(df: pd.DataFrame, column: str, given: Any) -> Any:
    if given is not None or column not in df.columns:
        return given
    values = df[column].dropna().unique()
    if len(values) != 1:
        raise ValidationError(f"column {column!r} holds {len(values)} values {list(values)[:5]}; pass {column}= to choose one")
    return values[0]


@styled
def variance_check_plot(check: VarianceCheck) -> Figure:
    """Predicted (length map) vs measured pre-activation variance q^l per layer, and their error."""
    layers = np.arange(1, check.depth + 1)
    fig = Figure(figsize=(6.4, 5.2))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    colour = init_color(check.init.split("(")[0])
    top.plot(layers, check.predicted, color="black", lw=2, label="predicted (mean-field length map)")
    top.errorbar(layers, check.measured, yerr=check.measured_std, fmt="o", ms=4, color=colour, ecolor=colour,
                 capsize=2, label=f"measured, mean ± std over {check.seeds} networks")
    if check.predicted.max() / max(check.predicted.min(), 1e-300) > 20:
        top.set_yscale("log")
    top.set_ylabel(r"pre-activation variance $q^l$")
    top.set_title(f"{check.init} + {check.activation}: width {check.width}, $\\sigma_b^2$={check.sigma_b2:g}, "
                  f"$q^0$={check.q0:.3g}")
    top.legend(fontsize=8)
    bottom.axhspan(-5, 5, color="#2ca02c", alpha=0.12, label="±5%")
    bottom.plot(layers, 100 * check.relative_error, "o-", ms=3, color=colour)
    bottom.axhline(0, color="black", lw=0.8)
    bottom.set_ylabel("(pred - meas)/meas, %")
    bottom.set_xlabel(r"layer $l$  ($h^l = W^l\,\phi(h^{l-1}) + b^l$)")
    bottom.legend(fontsize=8, loc="upper left")
    return fig
