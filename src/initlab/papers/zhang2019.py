"""Zhang, Dauphin & Ma 2019 (Fixup): a deep residual net without normalization, He vs Fixup.

"Fixup Initialization: Residual Learning Without Normalization" (ICLR 2019). Section 2: with a
standard init (He), a residual net without normalization has an output whose variance grows
exponentially with the number of blocks (each block adds a branch of about the same variance
as its input), so gradient descent blows up; section 3: Fixup (branch last layers and classifier
at 0, the other branch layers He-scaled by ``L^(-1/(2m-2))``, scalar biases and multipliers)
starts each block as the identity and trains the same deep net without normalization.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._base import Claim, Paper, PaperResult
from ._common import clean

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..models.residual import ResidualMLP

WIDTH, BRANCH_LAYERS = 64, 2
LR, MOMENTUM, BATCH = 0.01, 0.9, 32
COLORS = {"he": "#2ca02c", "fixup": "#e6550d"}  # he: initlab's he_normal green
LABELS = {"he": "He (he_normal everywhere)", "fixup": "Fixup"}
EXPLODE_FACTOR = 1e3  # He: std(deepest) / std(1 block) at least this
STABLE_BAND = (0.5, 2.0)  # Fixup: std(deepest) / std(1 block) within this


def _settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"depths": [1, 4, 16, 64], "train_blocks": 32, "epochs": 2, "init_seeds": 2}
    return {"depths": [1, 2, 4, 8, 16, 32, 64, 128], "train_blocks": 64, "epochs": 10, "init_seeds": 5}


def _model(blocks: int, init: str, seed: int, n_in: int, n_out: int) -> ResidualMLP:
    from ..initializers.fixup import fixup_init, he_residual_init
    from ..models.residual import ResidualMLP

    model = ResidualMLP(n_in, WIDTH, blocks, n_out, BRANCH_LAYERS, generator=seed)
    if init == "fixup":  # both initialize in place
        fixup_init(model, generator=seed)
    else:
        he_residual_init(model, generator=seed)
    return model


def _train(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int, order_seed: int) -> dict[str, Any]:
    """SGD with momentum, minibatches of 32 in initlab's order; per-step losses, stops at a non-finite loss.

    The step is torch.optim.SGD's heavy-ball rule (``v = momentum v + g`` with ``v = g`` at the first
    step, ``p -= lr v``), written out: torch.optim's first step imports torch.distributed (seconds).
    """
    from ..training.order import minibatch_order

    params = [p for p in model.parameters()]
    velocity: list[torch.Tensor | None] = [None] * len(params)
    loss_fn = torch.nn.CrossEntropyLoss()
    with torch.no_grad():
        initial = float(loss_fn(model(X), y))
    steps, epoch_loss, diverged = [], [], None
    n = len(X)
    for epoch in range(epochs):
        order = torch.from_numpy(minibatch_order(order_seed, epoch, n))  # (n,)
        total = 0.0
        for start in range(0, n, BATCH):
            idx = order[start:start + BATCH]
            loss = loss_fn(model(X[idx]), y[idx])
            value = float(loss.detach())
            steps.append(value)
            if not math.isfinite(value):
                diverged = len(steps)
                break
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for i, (p, g) in enumerate(zip(params, grads, strict=False)):
                    v = velocity[i]
                    velocity[i] = v = g.clone() if v is None else v.mul_(MOMENTUM).add_(g)
                    p.sub_(LR * v)
            total += value * len(idx)
        if diverged is not None:
            break
        epoch_loss.append(total / n)
    return {"initial_loss": initial, "step_loss": steps, "epoch_loss": epoch_loss, "diverged_step": diverged}


def _train_note(he: dict[str, Any], he_failed: bool, chance_loss: float) -> str:
    """The one learning rate, and (only where He's run failed) what its run measured."""
    note = f"one learning rate ({LR}, a standard one for this net)"
    if not he_failed:
        return note + "."
    init = he.get("initial_loss")
    start = f"He's initial loss is {init:.3g} (chance {chance_loss:.3g})" if init is not None else "He's run fails"
    if he.get("diverged_step") is not None:
        return (note + f"; {start} and its run diverges at step {he['diverged_step']}: a far smaller learning "
                "rate might step, which is not tried here.")
    return note + f"; {start}; a smaller learning rate is not tried here."


def run(quick: bool, seed: int) -> PaperResult:
    from ..datasets import digits

    cfg = _settings(quick)
    Xn, yn = digits(seed=seed)
    X, y = torch.as_tensor(Xn), torch.as_tensor(yn)
    n_in, n_out = X.shape[1], int(y.max()) + 1

    std: dict[str, dict[str, float]] = {}
    for init in ("he", "fixup"):
        std[init] = {}
        for blocks in cfg["depths"]:
            values = []
            for s in range(seed, seed + cfg["init_seeds"]):
                with torch.no_grad():
                    values.append(float(_model(blocks, init, s, n_in, n_out).features(X).double().std()))
            std[init][str(blocks)] = float(np.exp(np.mean(np.log(values))))  # geometric mean over init seeds
    logit_std = {}
    with torch.no_grad():
        for init in ("he", "fixup"):
            logit_std[init] = float(_model(cfg["depths"][-1], init, seed, n_in, n_out)(X).double().std())

    runs = {init: _train(_model(cfg["train_blocks"], init, seed, n_in, n_out), X, y, cfg["epochs"], seed)
            for init in ("he", "fixup")}
    final_loss = {init: (r["epoch_loss"][-1] if r["diverged_step"] is None and r["epoch_loss"] else None)
                  for init, r in runs.items()}

    lo, hi = str(cfg["depths"][0]), str(cfg["depths"][-1])
    growth = {init: std[init][hi] / std[init][lo] for init in std}
    chance_loss = math.log(n_out)
    he_final = final_loss["he"]
    he_failed = he_final is None or not math.isfinite(he_final) or he_final >= chance_loss
    claims = [
        Claim(
            "he_explodes_at_init",
            "Without normalization, a He-initialized residual net's output grows exponentially with the number of "
            "blocks (sections 2-3).",
            clean({"std_growth_first_to_deepest": {"he": growth["he"]}, "depths": [int(lo), int(hi)]}),
            bool(growth["he"] >= EXPLODE_FACTOR),
            f"std(output, {hi} blocks) / std(output, {lo} block): He >= {EXPLODE_FACTOR:g}",
        ),
        Claim(
            "fixup_keeps_one_block_scale",
            "Fixup keeps the output at the scale of one block, whatever the depth (sections 2-3).",
            clean({"std_growth_first_to_deepest": {"fixup": growth["fixup"]}, "depths": [int(lo), int(hi)]}),
            bool(STABLE_BAND[0] <= growth["fixup"] <= STABLE_BAND[1]),
            f"std(output, {hi} blocks) / std(output, {lo} block): Fixup in [{STABLE_BAND[0]}, {STABLE_BAND[1]}]",
            by_construction=True,
            note="output = the last block's output (the classifier's input); Fixup's logits are exactly 0 at "
                 "init by its rule 1, so their std says nothing. Fixup zero-initializes each branch's last layer, "
                 "so every block is the identity at init and the ratio is 1 by definition: shown, not counted.",
        ),
        Claim(
            "fixup_trains_without_normalization",
            f"Fixup trains a deep ({cfg['train_blocks']}-block) residual net without normalization at a standard "
            "learning rate, where He init does not.",
            clean({"final_loss": final_loss, "initial_loss": {i: r["initial_loss"] for i, r in runs.items()},
                   "diverged_step": {i: r["diverged_step"] for i, r in runs.items()}, "chance_loss": chance_loss}),
            bool(final_loss["fixup"] is not None and final_loss["fixup"] <= 0.5 * chance_loss and he_failed),
            f"final_loss[fixup] <= ln(10)/2 = {0.5 * chance_loss:.3f} and He's loss diverged (non-finite) or "
            f"ended >= ln(10) = {chance_loss:.3f}",
            note=_train_note(runs["he"], he_failed, chance_loss),
        ),
    ]
    return PaperResult(
        name="zhang2019", title=PAPER.title, citation=PAPER.citation, quick=quick, seed=seed, claims=claims,
        measured=clean({"output_std_at_init": std, "final_loss": final_loss}),
        setup=(f"Residual MLPs without normalization on sklearn's digits: a {n_in}->{WIDTH} ReLU stem, L residual "
               f"blocks of {BRANCH_LAYERS} bias-free Linear({WIDTH}, {WIDTH}) layers with Fixup's scalar biases and "
               f"multiplier, a {WIDTH}->{n_out} classifier. Output std at init over the digits for L in "
               f"{cfg['depths']} (geometric mean of {cfg['init_seeds']} init seeds); then L = {cfg['train_blocks']} "
               f"trained by SGD (lr {LR}, momentum {MOMENTUM}, batch {BATCH}) for {cfg['epochs']} epochs from He "
               "(every layer he_normal, scalars 0/1) and from Fixup (initlab.initializers.fixup.fixup_init)."),
        differences=("The paper trains convolutional ResNets on CIFAR-10 and ImageNet, and Transformers; here the "
                     "fully connected analogue of its basic block on "
                     "8x8 digits, on 2 CPU cores. The He baseline is He without normalization (the paper's "
                     "'no normalization' failure case), not a BatchNorm ResNet."),
        data=clean({"step_loss": {i: r["step_loss"] for i, r in runs.items()}, "labels": LABELS,
                    "logit_std_deepest": logit_std, "train_blocks": cfg["train_blocks"],
                    "steps_per_epoch": math.ceil(len(X) / BATCH)}),
    )


def figures(result: PaperResult) -> dict[str, Figure]:
    from matplotlib.figure import Figure

    from ..plots.style import styled

    @styled
    def fixup() -> Figure:
        std, data = result.measured["output_std_at_init"], result.data
        fig = Figure(figsize=(11, 4.2))
        ax, ax2 = fig.subplots(1, 2)
        for init, by_depth in std.items():
            depths = [int(d) for d in by_depth]
            ax.plot(depths, list(by_depth.values()), "o-", color=COLORS[init], label=data["labels"][init])
        ax.set(xscale="log", yscale="log", title="Output std at init (no normalization)",
               xlabel="residual blocks L", ylabel="std of the last block's output")
        ax.set_xscale("log", base=2)
        ax.legend()
        for init, steps in data["step_loss"].items():
            values = np.array([np.nan if v is None else v for v in steps], dtype=float)
            x = np.arange(1, len(values) + 1)
            ax2.plot(x, values, color=COLORS[init], lw=1, marker="o" if len(values) < 20 else None, ms=4,
                     label=data["labels"][init])
            if len(values) and not np.isfinite(values[-1]):
                finite = values[np.isfinite(values)]
                y_mark = finite.max() if len(finite) else 1.0
                ax2.plot([x[-1]], [y_mark], "x", color=COLORS[init], ms=10, mew=2,
                         label=f"{init}: loss non-finite at step {len(values)}")
        ax2.set(yscale="log", title=f"Training loss, {data['train_blocks']} blocks (SGD)",
                xlabel="step (minibatch of 32)", ylabel="cross-entropy")
        ax2.legend()
        fig.suptitle("Zhang et al. 2019 (Fixup): a deep residual MLP without normalization")
        return fig

    return {"fixup": fixup()}


PAPER = Paper(
    name="zhang2019",
    title="Fixup Initialization: Residual Learning Without Normalization",
    citation="Zhang, Dauphin & Ma, ICLR 2019",
    summary="Without normalization a He ResNet explodes at init; Fixup trains it",
    run=run,
    figures=figures,
)
