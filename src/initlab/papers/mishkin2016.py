"""Mishkin & Matas 2016 ("All you need is a good init"): layer-sequential unit-variance (LSUV) init.

LSUV (Algorithm 1) first fills every layer with an orthonormal matrix, then walks the layers from
input to output and divides each layer's weights by the standard deviation of its output on a
minibatch until ``|Var - 1| < Tol_var`` (0.1) or ``T_max`` (10) passes. The paper reports that it
converges in a few iterations and that very deep thin nets initialized this way train at least
as well as with orthonormal or He init.

initlab's LSUV is used through its public entry point, ``apply_init(model, "lsuv", data=batch)``;
the iterations are counted from outside (forward hooks), so this module does not depend on how
LSUV is implemented.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ._base import Claim, Paper, PaperResult
from ._common import clean, digits_split, histories

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

TOL, MAX_ITER = 0.1, 10  # the paper's Tol_var and T_max
LSUV = {"name": "lsuv", "tol": TOL, "max_iter": MAX_ITER}
INITS = {"lsuv": LSUV, "orthogonal": "orthogonal", "he": "he_normal"}
COLORS = {"lsuv": "lsuv", "orthogonal": "orthogonal", "he": "he_normal"}
LSUV_ROWS = 256  # the minibatch LSUV measures on
LR, MOMENTUM, BATCH = 0.002, 0.9, 32  # as he2015: 0.01 made the 20-layer nets diverge
FEW = 5  # "a few" iterations per layer


def _settings(quick: bool) -> dict[str, Any]:
    return {"hidden": 12, "width": 32, "epochs": 20} if quick else {"hidden": 20, "width": 32, "epochs": 40}


def lsuv_trace(model: torch.nn.Module, batch: torch.Tensor, seed: int) -> tuple[list[float], list[float], list[int]]:
    """Run ``apply_init(model, LSUV, data=batch)`` and watch it: each Linear layer's output variance at the
    first pass (after the orthonormal step) and after LSUV, and the passes LSUV spent on each layer.

    A layer's passes are counted from the forward passes in which its weights had a new scale: LSUV
    divides layer ``k`` only while working on it, so ``k`` shows ``divisions + 1`` distinct scales; the
    last pass on a layer that never converged divides once more, hence the cap at ``MAX_ITER``.
    """
    import torch

    from ..initializers import apply_init

    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    seen: list[list[float]] = [[] for _ in layers]  # per layer: the weight norm at each forward pass
    first: list[float | None] = [None] * len(layers)

    def hook(k: int) -> Callable[[torch.nn.Linear, tuple[Any, ...], torch.Tensor], None]:
        def record(module: torch.nn.Linear, _inputs: tuple[Any, ...], output: torch.Tensor) -> None:
            norm = float(module.weight.norm())
            if not seen[k] or seen[k][-1] != norm:
                seen[k].append(norm)
            if first[k] is None:
                first[k] = float(output.var())
        return record

    handles = [layer.register_forward_hook(hook(k)) for k, layer in enumerate(layers)]
    try:
        apply_init(model, LSUV, "zeros", generator=seed, data=batch)
    finally:
        for h in handles:
            h.remove()
    passes = [min(len(s), MAX_ITER) for s in seen]
    after = _layer_variances(model, batch)
    firsts = [v for v in first if v is not None]
    assert len(firsts) == len(first)  # every Linear layer ran in the first pass
    return firsts, after, passes


def _layer_variances(model: torch.nn.Module, batch: torch.Tensor) -> list[float]:
    """Each Linear layer's output variance on ``batch``."""
    import torch

    out: list[float] = []
    handles = [m.register_forward_hook(lambda _m, _i, o: out.append(float(o.var())))
               for m in model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for h in handles:
            h.remove()
    return out


def run(quick: bool, seed: int) -> PaperResult:
    import torch

    from ..experiments import RunSpec, execute, initialized
    from ..models import MLP

    cfg = _settings(quick)
    X, y, X_val, y_val = digits_split(seed)
    batch = torch.as_tensor(X[:LSUV_ROWS])
    sizes = [X.shape[1]] + [cfg["width"]] * cfg["hidden"] + [10]
    model = MLP(sizes, "relu", "softmax")
    before, after, passes = lsuv_trace(model, batch, seed)
    held_out = _layer_variances(model, torch.as_tensor(X_val))

    names = list(INITS)
    specs = [RunSpec(name=n, dataset="digits", activation="relu", hidden=[cfg["width"]] * cfg["hidden"], init=INITS[n],
                     init_rows=LSUV_ROWS, optimizer="sgd", learning_rate=LR, momentum=MOMENTUM, epochs=cfg["epochs"],
                     batch_size=BATCH, seed=seed) for n in names]
    split = (X, y, X_val, y_val)
    # the run core draws LSUV through the same entry point with the same seed: the same weights
    same = bool(torch.allclose(initialized(specs, data=split).weights()[-1][0], model.linears[-1].weight, atol=1e-6))
    records = list(execute(specs, data=split, diagnostics=False))
    loss, val = histories(records), histories(records, "val_accuracy")  # (M, epochs), NaN after a divergence
    final_loss = {n: clean(loss[i, -1]) for i, n in enumerate(names)}
    val_acc = {n: clean(val[i, -1]) for i, n in enumerate(names)}
    curves = {n: clean(loss[i]) for i, n in enumerate(names)}

    worst = max(abs(v - 1) for v in after)
    others = [final_loss[n] for n in ("orthogonal", "he") if final_loss[n] is not None]
    claims = [
        Claim(
            "unit_variance",
            "After LSUV every layer's output variance on the minibatch is within Tol_var of 1.",
            {"layer_variance_after": clean(after), "max_abs_deviation": clean(worst), "tol": TOL},
            bool(worst < TOL),
            f"|Var(layer output) - 1| < {TOL} for every layer (on the LSUV minibatch)",
        ),
        Claim(
            "few_iterations",
            f"LSUV converges in a few iterations per layer, well below T_max = {MAX_ITER}.",
            {"iterations": passes},
            bool(max(passes) <= FEW),
            f"every layer needs at most {FEW} passes",
        ),
        Claim(
            "trains_as_well",
            "A deep thin net initialized by LSUV trains at least as well as with orthonormal or He init.",
            {"final_loss": final_loss},
            bool(final_loss["lsuv"] is not None and others and final_loss["lsuv"] <= 1.1 * min(others)),
            f"training loss after {cfg['epochs']} epochs: lsuv <= 1.1 x the better of orthogonal and he",
        ),
    ]
    return PaperResult(
        name="mishkin2016", title=PAPER.title, citation=PAPER.citation, quick=quick, seed=seed, claims=claims,
        measured={"layer_variance_after": clean(after), "layer_variance_before": clean(before),
                  "layer_variance_held_out": clean(held_out), "iterations": passes, "final_loss": final_loss,
                  "val_accuracy": val_acc, "trainer_matches_lsuv_draw": same},
        setup=(f"A thin deep ReLU MLP, {cfg['hidden']} hidden layers of {cfg['width']} units, softmax output, on "
               f"sklearn's digits (1500 training rows, standardized; 297 held out). LSUV through initlab's "
               f"apply_init(model, 'lsuv', data=...) with Tol_var {TOL}, T_max {MAX_ITER}, on a minibatch of "
               f"{LSUV_ROWS} training rows; biases zero. Variances are of each Linear layer's output (before the "
               f"ReLU), as LSUV measures them. Training: SGD lr {LR}, momentum {MOMENTUM}, minibatches of "
               f"{BATCH}, {cfg['epochs']} epochs, the three inits in one batched stack. The orthogonal baseline "
               f"has gain 1 (LSUV's own first step), so under ReLU its signal halves per layer."),
        differences=("The paper's thin deep nets are convolutional FitNets and residual nets on CIFAR-10/100 and "
                     "ImageNet; here a fully connected net of the same spirit (deep, narrow) on 8x8 digits keeps "
                     "the run short on one CPU core. LSUV itself is the paper's Algorithm 1 as initlab implements it."),
        data={"before": clean(before), "after": clean(after), "held_out": clean(held_out), "curves": curves},
    )


def figures(result: PaperResult) -> dict[str, Figure]:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from ..plots.style import init_color, styled

    @styled
    def draw() -> Figure:
        fig = Figure(figsize=(11, 4))
        ax, ax2 = fig.subplots(1, 2)
        before = np.array(result.data["before"], dtype=float)
        after = np.array(result.data["after"], dtype=float)
        layers = np.arange(1, len(before) + 1)
        ax.axhspan(1 - TOL, 1 + TOL, color="#ddd", label=f"1 ± Tol_var ({TOL})")
        ax.semilogy(layers, before, marker="o", color=init_color("orthogonal"), label="orthonormal step (before)")
        ax.semilogy(layers, after, marker="o", color=init_color("lsuv"), label="after LSUV")
        ax.set(title="output variance of each layer on the minibatch", xlabel="layer (last: output)",
               ylabel="variance")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        for n, curve in result.data["curves"].items():
            c = np.array([np.nan if v is None else v for v in curve], dtype=float)
            ax2.plot(np.arange(1, len(c) + 1), c, color=init_color(COLORS[n]), lw=2, label=n)
        ax2.set(title="training", xlabel="epoch", ylabel="training loss (cross-entropy)", yscale="log")
        ax2.legend()
        fig.suptitle("Mishkin & Matas 2016: LSUV on a deep thin ReLU net")
        fig.tight_layout()
        return fig

    return {"mishkin2016": draw()}


PAPER = Paper(
    name="mishkin2016",
    title="All you need is a good init (Mishkin & Matas 2016)",
    citation="D. Mishkin, J. Matas. All you need is a good init. ICLR 2016.",
    summary="LSUV on a deep thin net: unit variance per layer in a few iterations; training vs orthogonal and He",
    run=run,
    figures=figures,
)
