"""The catalog at a glance: what each initializer draws for one layer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import initializers
from .style import init_color, styled

__all__ = ["catalog_figure", "DEFAULT_SCHEMES"]

# Schemes whose draw for a plain layer is a distribution worth comparing (not constants,
# not data-dependent ones).
DEFAULT_SCHEMES = ("normal", "uniform", "truncated_normal", "glorot_normal", "glorot_uniform", "he_normal",
                   "he_uniform", "lecun_normal", "lecun_uniform", "orthogonal", "sparse")


@styled
def catalog_figure(fan_in: int = 256, fan_out: int = 256, names: Sequence[str] = DEFAULT_SCHEMES, seed: int = 0) -> Figure:
    """Weight densities of each scheme for a ``(fan_out, fan_in)`` layer, and its Var(W) * fan_in.

    Var(W) * fan_in is the sigma_w^2 of mean-field theory: 1 keeps a linear/tanh signal's
    variance through the layer, 2 a ReLU's (He et al. 2015). Drawn with default parameters.
    """
    gen = torch.Generator().manual_seed(seed)
    draws = {name: initializers.get(name)(torch.empty(fan_out, fan_in), gen).flatten().numpy() for name in names}
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    dens, bars = fig.subplots(1, 2, width_ratios=(1.6, 1))
    bound = max(float(np.percentile(np.abs(w), 99.5)) for w in draws.values())
    edges = np.linspace(-bound, bound, 61)
    centres = (edges[:-1] + edges[1:]) / 2
    peaks = []
    for name, w in draws.items():
        hist, _ = np.histogram(w, bins=edges, density=True)
        peaks.append(hist.max())
        style = "--" if "uniform" in name else "-"
        dens.plot(centres, hist, style, color=init_color(name), lw=1.6, label=f"{name} (std {w.std():.3f})")
    dens.set_xlim(-bound, bound)
    # a sparse draw is a spike of exact zeros: let it run off the top rather than flatten the rest
    dens.set_ylim(0, 1.35 * sorted(peaks)[-2] if len(peaks) > 1 else None)
    dens.set_xlabel("weight value")
    dens.set_ylabel("density")
    dens.set_title(f"Weights drawn for one {fan_in}->{fan_out} layer")
    dens.legend(fontsize=8, ncol=2, loc="upper right", frameon=False)
    order = sorted(draws, key=lambda n: float(draws[n].var()))
    sigma = [float(draws[n].var()) * fan_in for n in order]
    bars.barh(order, sigma, color=[init_color(n) for n in order])
    bars.axvline(1.0, color="#444444", ls=":", lw=1.2, label=r"$\sigma_w^2$ = 1: preserves tanh / linear signals")
    bars.axvline(2.0, color="#444444", ls="--", lw=1.2, label=r"$\sigma_w^2$ = 2: preserves ReLU signals")
    bars.legend(fontsize=8, loc="lower right", frameon=True)
    bars.set_xscale("log")
    bars.set_xlabel(r"$\sigma_w^2$ = Var(W) $\times$ fan_in  (log scale)")
    bars.set_title("Signal gain per layer")
    fig.suptitle("initlab initializer catalog, default parameters")
    return fig
