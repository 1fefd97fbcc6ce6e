"""Glorot & Bengio 2010: saturation of the top sigmoid layer, and the normalized initialization.

Two observations of "Understanding the difficulty of training deep feedforward neural networks":

* Fig. 2: a deep sigmoid MLP with the then-standard init ``W ~ U(-1/sqrt(n), 1/sqrt(n))`` (``n`` the
  fan-in, biases 0), trained by SGD on small minibatches: the top hidden layer's mean activation
  drops towards 0 early in training (it saturates; the softmax first learns from its biases and
  the top layer's constant ~0.5 output only adds noise), while the lower layers stay near 0.5.
* Figs. 6-7: with tanh at init, the standard init's activations and back-propagated gradients
  ``dCost/ds`` change scale from layer to layer (each layer multiplies their variance by
  ``n Var W = 1/3``), while the normalized init ``U(+-sqrt(6/(n_in + n_out)))`` keeps
  ``n Var W = 1`` both ways and so both about equal across layers (Eqs. 12-16).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ._base import Claim, Paper, PaperResult
from ._common import clean, digits_split, histories

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

# the paper's two inits, as catalog specs
INITS: dict[str, str | dict[str, Any]] = {
    "standard": {"name": "variance_scaling", "scale": 1 / 3, "mode": "fan_in", "distribution": "uniform"},  # U(+-1/sqrt(n))
    "normalized": "glorot_uniform",  # U(+-sqrt(6 / (n_in + n_out)))
}
COLORS = {"standard": "variance_scaling", "normalized": "glorot_uniform"}
HIDDEN_LAYERS = 4  # Fig. 2: hidden layers 1..4
HIST_LAYERS = 5  # Figs. 6-7: five tanh hidden layers
LR, BATCH = 0.1, 10
MONITOR_ROWS = 300  # the paper monitors 300 fixed test examples
CHANCE_LOSS = float(np.log(10))  # cross-entropy of a net that learned nothing (10 balanced classes)
CHANCE_SHARE = 0.95  # trained = final training loss below this share of the chance loss
HALF_SLACK = 0.01  # a layer's mean may sit this far below 0.5 and still count as "above 0.5"
ORDER_SLACK = 0.005  # ... and a lower layer this far above the layer over it


class _Stack(Protocol):
    """What the monitor callback uses of the batched trainer (papers import no trainer)."""

    def hidden(self, X: Any) -> list[torch.Tensor]: ...


def _above_half_decreasing(layer_means: list[float | None]) -> bool:
    """Every mean >= 0.5 - HALF_SLACK and non-increasing from the top's neighbour down to layer 1."""
    m = [float("nan") if v is None else float(v) for v in layer_means]
    return bool(all(v >= 0.5 - HALF_SLACK for v in m)
                and all(m[k] <= m[k + 1] + ORDER_SLACK for k in range(len(m) - 1)))


def _settings(quick: bool) -> dict[str, Any]:
    return {"width": 100, "epochs": 25, "hist_width": 256} if quick else {"width": 300, "epochs": 60, "hist_width": 1000}


def run(quick: bool, seed: int) -> PaperResult:
    cfg = _settings(quick)
    X, y, X_val, y_val = digits_split(seed, standardize=False)  # pixels in [0, 1], as Shapeset's
    monitor = X_val[:MONITOR_ROWS]
    means, stds, losses = _train_sigmoid(X, y, monitor, cfg, seed)
    act_hist, grad_hist, act_std, grad_std = _init_histograms(X[:MONITOR_ROWS], y[:MONITOR_ROWS], cfg, seed)

    top_min = {n: clean(means[n][:, -1].min()) for n in INITS}
    first_range = {n: clean([means[n][:, 0].min(), means[n][:, 0].max()]) for n in INITS}
    grad_ratio = {n: clean(grad_std[n][0] / grad_std[n][-1]) for n in INITS}
    act_ratio = {n: clean(act_std[n][-1] / act_std[n][0]) for n in INITS}
    lower = {n: clean([means[n][:, :-1].min(), means[n][:, :-1].max()]) for n in INITS}
    # each layer below the top: its mean activation averaged over the training epochs (init excluded), layer 1 first
    below = {n: clean(means[n][1:, :-1].mean(0)) for n in INITS}
    final = {n: float(losses[n][-1]) for n in INITS}
    learned = bool(np.isfinite(final["standard"]) and final["standard"] < CHANCE_SHARE * CHANCE_LOSS)
    claims = [
        Claim(
            "top_layer_saturates",
            "With the standard init, the top hidden layer's mean sigmoid activation drops towards 0 early in "
            "training (Fig. 2).",
            {"top_layer_min_mean": top_min},
            bool(top_min["standard"] is not None and top_min["standard"] < 0.1),
            f"top_layer_min_mean[standard] < 0.1 over {cfg['epochs']} epochs",
        ),
        Claim(
            "lower_layers_above_half",
            "Inversely, the other layers have a mean activation value above 0.5, decreasing from the output layer "
            "to the input layer (Sec. 3.1, Fig. 2).",
            {"layer_mean_over_training_below_top": below, "layers_below_top_mean_range": lower},
            _above_half_decreasing(below["standard"]),
            f"standard init, every layer below the top: mean activation over the {cfg['epochs']} epochs >= "
            f"{0.5 - HALF_SLACK} and non-increasing from the layer below the top down to layer 1 (slack {ORDER_SLACK})",
        ),
        Claim(
            "gradients_by_layer",
            "At init (tanh), the standard init's back-propagated gradients shrink from the top layer down, the "
            "normalized init keeps them about equal across layers (Fig. 7).",
            {"grad_std_ratio_first_last": grad_ratio},
            bool(grad_ratio["standard"] < 0.5 and 0.5 <= grad_ratio["normalized"] <= 2.0),
            "std(dCost/ds) first / last hidden layer: standard < 0.5, normalized in [0.5, 2]",
        ),
        Claim(
            "activations_by_layer",
            "At init (tanh), the standard init's activations shrink layer after layer (the peak at 0 grows in "
            "higher layers), the normalized init keeps their spread (Fig. 6).",
            {"activation_std_ratio_last_first": act_ratio},
            bool(act_ratio["standard"] < 0.5 and 0.5 <= act_ratio["normalized"] <= 2.0),
            "std(activation) last / first hidden layer: standard < 0.5, normalized in [0.5, 2]",
        ),
    ]
    for claim in claims[:2]:  # what training did: needs training to have happened
        claim.measured["final_loss_standard"] = clean(final["standard"])
        claim.measured["chance_loss"] = clean(CHANCE_LOSS)
        if not learned:
            claim.inconclusive = True
            claim.note = (f"Inconclusive: the standard-init net did not learn (final training loss "
                          f"{final['standard']:.3g}, chance ln 10 = {CHANCE_LOSS:.3g}); a claim about training "
                          f"dynamics needs a loss below {CHANCE_SHARE} x chance.")
    for claim in claims:
        if claim.id == "top_layer_saturates" and not claim.holds and not claim.inconclusive:
            claim.note = _top_note(top_min["standard"], cfg["epochs"] * (len(X) // BATCH), cfg["width"])
    return PaperResult(
        name="glorot2010", title=PAPER.title, citation=PAPER.citation, quick=quick, seed=seed, claims=claims,
        measured={"top_layer_min_mean": top_min, "first_layer_mean_range": first_range,
                  "grad_std_ratio_first_last": grad_ratio, "activation_std_ratio_last_first": act_ratio,
                  "final_loss": {n: clean(losses[n][-1]) for n in INITS}},
        setup=(f"Fig. 2: sigmoid MLP 64-{'-'.join([str(cfg['width'])] * HIDDEN_LAYERS)}-10 (softmax), standard "
               f"init U(+-1/sqrt(n)) and normalized init, biases 0, plain SGD lr {LR} on minibatches of {BATCH} "
               f"for {cfg['epochs']} epochs of sklearn's digits (1500 training rows, pixels in [0, 1]); the mean "
               f"and std of each hidden layer's activations on {MONITOR_ROWS} fixed held-out rows after every "
               f"epoch (and at init). Figs. 6-7: a tanh MLP with {HIST_LAYERS} hidden layers of "
               f"{cfg['hist_width']} units at init; activations and dCost/ds (cross-entropy, softmax output) on "
               f"{MONITOR_ROWS} training rows."),
        differences=("The paper trains on Shapeset-3x2 (32x32 images, effectively unlimited data) with 1000-unit "
                     "layers and records over millions of updates; here the data are sklearn's 8x8 digits (no "
                     "download, one CPU core), the Fig. 2 layers are narrower and training is shorter, so "
                     "the time axis is epochs of 150 updates rather than the paper's 20k-update ticks."),
        data={"means": {n: clean(means[n]) for n in INITS}, "stds": {n: clean(stds[n]) for n in INITS},
              "loss": {n: clean(losses[n]) for n in INITS},
              "act_hist": act_hist, "grad_hist": grad_hist,
              "act_std": {n: clean(act_std[n]) for n in INITS}, "grad_std": {n: clean(grad_std[n]) for n in INITS}},
    )


def _train_sigmoid(X: np.ndarray, y: np.ndarray, monitor: np.ndarray, cfg: dict[str, Any], seed: int
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Train both inits in one batch; per epoch (and at init) the mean and std of each hidden layer on ``monitor``."""
    from ..experiments import RunSpec, execute

    names = list(INITS)
    specs = [RunSpec(name=n, dataset="digits", activation="sigmoid", hidden=[cfg["width"]] * HIDDEN_LAYERS,
                     init=INITS[n], optimizer="sgd", learning_rate=LR, epochs=cfg["epochs"], batch_size=BATCH,
                     loss="ce", seed=seed) for n in names]
    rows: list[tuple[np.ndarray, np.ndarray]] = []

    class _Record:
        def record(self, trainer: _Stack) -> None:
            hidden = trainer.hidden(monitor)  # layers x (M, units, B)
            rows.append((np.stack([h.mean(dim=(1, 2)).numpy() for h in hidden], 1),
                         np.stack([h.std(dim=(1, 2)).numpy() for h in hidden], 1)))  # (M, layers) each

        def on_train_begin(self, trainer: _Stack) -> None:
            self.record(trainer)

        def on_epoch_end(self, trainer: _Stack, *_args: object) -> None:
            self.record(trainer)

    records = list(execute(specs, data=(X, y, X[:0], y[:0]), callbacks=[_Record()], diagnostics=False))
    mean = np.stack([r[0] for r in rows], 1)  # (M, epochs + 1, layers)
    std = np.stack([r[1] for r in rows], 1)
    return ({n: mean[i] for i, n in enumerate(names)}, {n: std[i] for i, n in enumerate(names)},
            {n: loss for n, loss in zip(names, histories(records), strict=False)})


def _init_histograms(X: np.ndarray, y: np.ndarray, cfg: dict[str, Any], seed: int) -> tuple[
        dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per tanh hidden layer at init: histograms and stds of activations and of dCost/ds, per init."""
    import torch
    import torch.nn.functional as F

    from ..initializers import apply_init
    from ..models import MLP

    act_edges = np.linspace(-1, 1, 41)
    act_hist: dict[str, dict[str, Any]] = {}
    grad_values: dict[str, list[Any]] = {}
    act_std: dict[str, np.ndarray] = {}
    grad_std: dict[str, np.ndarray] = {}
    x, target = torch.as_tensor(X), torch.as_tensor(y)
    for n, spec in INITS.items():
        model = MLP([X.shape[1]] + [cfg["hist_width"]] * HIST_LAYERS + [10], "tanh", "softmax")
        apply_init(model, spec, "zeros", generator=seed)  # in place
        pre: list[torch.Tensor] = []
        acts: list[torch.Tensor] = []
        h = x
        for name, module in model.named_children():
            h = module(h)
            if name.startswith("hidden"):
                h.retain_grad()
                pre.append(h)
            elif name.startswith("act"):
                acts.append(h)
        torch.autograd.backward(F.cross_entropy(h, target))
        grads = []
        for p in pre:
            assert p.grad is not None  # retain_grad() kept it
            grads.append(p.grad.detach().numpy().ravel())
        values = [a.detach().numpy().ravel() for a in acts]
        act_std[n] = np.array([v.std() for v in values])
        grad_std[n] = np.array([g.std() for g in grads])
        act_hist[n] = {"edges": clean(act_edges), "counts": [clean(np.histogram(v, act_edges)[0] / v.size) for v in values]}
        grad_values[n] = [clean(g) for g in grads]  # binned below with a common binning
    # one set of gradient bins for both inits, so the panels compare
    bound = float(max(np.quantile(np.abs(np.array(g, dtype=float)), 0.995) for n in INITS for g in grad_values[n]))
    edges = np.linspace(-bound, bound, 41)
    grad_hist = {n: {"edges": clean(edges), "counts": [clean(np.histogram(np.array(g, dtype=float), edges)[0] / len(g))
                                                        for g in grad_values[n]]} for n in INITS}
    return act_hist, grad_hist, act_std, grad_std


def figures(result: PaperResult) -> dict[str, Figure]:
    from matplotlib.figure import Figure

    from ..plots.style import init_color, styled

    layer_colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]

    @styled
    def fig2() -> Figure:
        fig = Figure(figsize=(11, 4))
        axes = fig.subplots(1, 2)
        for ax, n in zip(axes, INITS, strict=False):
            mean = np.array(result.data["means"][n], dtype=float)
            std = np.array(result.data["stds"][n], dtype=float)
            epochs = np.arange(len(mean))
            for l in range(mean.shape[1]):
                every = max(1, len(epochs) // 12)  # a dozen bars per layer, staggered so they do not overlap
                ax.errorbar(epochs, mean[:, l], yerr=std[:, l], color=layer_colors[l], lw=1.8, elinewidth=0.8,
                            capsize=2, errorevery=(l * every // 4, every), label=f"layer {l + 1}")
            ax.set(title=f"{n} init", xlabel="epoch (0: at init)", ylabel="activation value (mean ± std)", ylim=(-0.05, 1.15))
            ax.legend(loc="upper center", ncol=4)
        fig.suptitle("Glorot & Bengio 2010, Fig. 2: sigmoid activations per hidden layer during training")
        fig.tight_layout()
        return fig

    @styled
    def fig67() -> Figure:
        fig = Figure(figsize=(11, 7))
        axes = fig.subplots(2, 2)
        for row, (key, label) in enumerate((("act_hist", "activation value (tanh)"), ("grad_hist", "back-propagated gradient dCost/ds"))):
            for col, n in enumerate(INITS):
                ax = axes[row, col]
                hist = result.data[key][n]
                edges = np.array(hist["edges"], dtype=float)
                for l, counts in enumerate(hist["counts"]):
                    ax.stairs(np.array(counts, dtype=float), edges, color=layer_colors[l], lw=1.5, label=f"layer {l + 1}")
                ax.set(title=f"{n} init", xlabel=label, ylabel="fraction")
                if key == "grad_hist":
                    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
                ax.title.set_color(init_color(COLORS[n]))
                ax.legend(fontsize=8)
        fig.suptitle("Glorot & Bengio 2010, Figs. 6-7: activations (top) and gradients (bottom) per layer at init, tanh")
        fig.tight_layout()
        return fig

    return {"glorot2010": fig2(), "glorot2010-histograms": fig67()}


PAPER = Paper(
    name="glorot2010",
    title="Understanding the difficulty of training deep feedforward neural networks (Glorot & Bengio 2010)",
    citation=("X. Glorot, Y. Bengio. Understanding the difficulty of training deep feedforward neural networks. "
              "AISTATS 2010."),
    summary="deep sigmoid MLP: the top layer saturates early; activations and gradients per layer, standard vs normalized init",
    run=run,
    figures=figures,
)


def _top_note(top_min: float | None, updates: int, width: int) -> str:
    """Why the top layer did not saturate: its lowest mean (measured), or that the mean was not finite."""
    if top_min is None:
        return (f"The top layer's mean activation is not finite at some epoch (the run diverged), so how low it "
                f"fell is not measured; this run has {updates} updates on {width} units.")
    return (f"The top layer's mean fell only to {top_min:.2f}: the paper's Fig. 2 needs tens of thousands of "
            f"updates on 1000-unit layers; this run has {updates} updates on {width} units.")
