"""The figure docs/img/autoinit-depth.png and the table of the docs' autoinit page (docs/tutorials/autoinit.md).

50-layer MLPs of width 256 on digits (standardized, upsampled to 256 features by linear
interpolation): torch's default init, anyinit's analytic mode and ``initlab.autoinit`` (analytic,
initialized on 256 training rows). Each layer's output std is measured on the 397 held-out rows;
the loss is the training cross-entropy after 50 Adam steps (lr 1e-3, batch 64; chance 2.30).

    PYTHONPATH=src python bench/autoinit_depth.py [--no-figure]
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn

import initlab
from initlab.datasets.bundled import digits


class Swish(nn.Module):
    """x * sigmoid(x), written by the user."""

    def forward(self, x):
        return x * torch.sigmoid(x)


ACTS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "custom x*sigmoid(x)": Swish}
INITS = ("torch default", "anyinit analytic", "anyinit empirical", "autoinit")


def data():
    X, y = digits(0)
    X = torch.tensor(X)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    X = F.interpolate(X[:, None, :], size=256, mode="linear", align_corners=True)[:, 0]
    return X[:1400], torch.tensor(y)[:1400], X[1400:]


def mlp(act):
    torch.manual_seed(0)
    layers = []
    for _ in range(50):
        layers += [nn.Linear(256, 256), act()]
    return nn.Sequential(*layers, nn.Linear(256, 10))


def layer_stds(model, x):
    out = []
    with torch.no_grad():
        for m in model:
            x = m(x)
            if isinstance(m, nn.Linear):
                out.append(float(x.std()))
    return out[:-1]  # the 50 hidden layers


def train_loss(model, X, y):
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        idx = torch.randint(0, len(X), (64,), generator=g)
        loss = F.cross_entropy(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(F.cross_entropy(model(X), y))


def initialize(model, how, X):
    if how == "autoinit":
        initlab.autoinit(model, X[:256], generator=0)
    elif how.startswith("anyinit"):
        import anyinit

        if how.endswith("analytic"):
            anyinit.initialize(model, "analytic", (256,), seed=0)
        else:
            anyinit.initialize(model, "empirical", X[:256], seed=0)


def main(figure: bool = True) -> None:
    torch.set_num_threads(1)
    Xtr, ytr, Xte = data()
    curves = {}
    print(f"{'activation':22s} {'init':18s} last/first  max/min   loss")
    for name, act in ACTS.items():
        for how in INITS:
            model = mlp(act)
            initialize(model, how, Xtr)
            s = layer_stds(model, Xte)
            curves[(name, how)] = s
            print(f"{name:22s} {how:18s} {s[-1] / s[0]:10.3g} {max(s) / min(s):8.3g} {train_loss(model, Xtr, ytr):6.2f}",
                  flush=True)
    if figure:
        save_figure(curves)


def save_figure(curves) -> None:
    from matplotlib.figure import Figure

    from initlab.plots.style import save, styled

    colors = {"torch default": "#7f7f7f", "anyinit analytic": "#ff7f0e", "autoinit": "#1f77b4"}

    @styled
    def make():
        fig = Figure(figsize=(13, 3.6))
        axes = fig.subplots(1, len(ACTS), sharey=True)
        for ax, name in zip(axes, ACTS, strict=False):
            for how, c in colors.items():
                ax.plot(range(1, 51), curves[(name, how)], color=c, label=how)
            ax.axhspan(0.5, 2.0, color="#2ca02c", alpha=0.08)
            ax.set_yscale("log")
            ax.set_title(name)
            ax.set_xlabel("layer")
        axes[0].set_ylabel("layer output std (held-out rows)")
        axes[0].legend(loc="lower left", fontsize=8)
        fig.suptitle("50-layer MLPs, width 256, digits: each layer's output std after init (green: 0.5 to 2)", y=1.05)
        return fig

    save(make(), "docs/img/autoinit-depth.png")


if __name__ == "__main__":
    main(figure="--no-figure" not in sys.argv)
