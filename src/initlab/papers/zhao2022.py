"""Zhao et al. 2022 (ZerO): an init of only zeros, ones and a Hadamard block trains like random init.

"ZerO Initialization: Initializing Neural Networks with only Zeros and Ones" (TMLR 2022): every
weight is an identity, a partial identity, or (where a layer widens) a scaled Hadamard block
(Algorithm 1; initlab's ``hadamard_identity``, alias ``ZerO``). Claims re-run here:

* all-zeros cannot train an MLP (every hidden unit stays identical: the init never breaks the symmetry),
  which is initlab's classic experiment (the 2-10-1 net on the 100-point two-moons set);
* ZerO, deterministic and with no random draw, trains as well as random init (He, Glorot) on the
  same nets (the paper's experiments on image and language tasks; here on moons and sklearn's digits);
* ZerO is deterministic: two different init seeds give bit-identical training runs (the
  paper's case for a deterministic init).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._base import Claim, Paper, PaperResult
from ._common import clean

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INITS = ("zeros", "hadamard_identity", "he_normal", "glorot_uniform")
RANDOM = ("he_normal", "glorot_uniform")
LABELS = {"zeros": "zeros", "hadamard_identity": "ZerO (hadamard_identity)", "he_normal": "he_normal",
          "glorot_uniform": "glorot_uniform"}
AS_WELL_TOL = 0.05  # ZerO's final accuracy may trail the random inits' mean by at most this
CHANCE_TOL = 0.05  # zeros' final accuracy at most majority-class rate + this


def _setups(quick: bool) -> dict[str, dict[str, Any]]:
    return {
        "moons 2-10-1": {"data": "moons", "sizes": [2, 10, 1], "output": "sigmoid", "epochs": 100 if quick else 200},
        "digits 64-128-128-10": {"data": "digits", "sizes": [64, 128, 128, 10], "output": "softmax",
                                 "epochs": 8 if quick else 20},
    }


def _data(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from ..datasets import digits, moons

    return moons(n_samples=100, noise=0.1, seed=seed) if name == "moons" else digits(seed=seed)


def _train(setup: dict[str, Any], X: np.ndarray, y: np.ndarray, init: str, init_seed: int, order_seed: int
           ) -> tuple[dict[str, list[float]], torch.Tensor, int]:
    """One MLP (relu) with ``init`` (biases zero), trained by Adam (Keras defaults, batch 32).

    Returns (history, final params, distinct units of the first hidden layer after training:
    distinct rows of ``[W | b]``, 1 when no unit split from the others; a split of zero-init units is float
    rounding amplified by Adam, never the init).
    """
    from ..experiments import RunSpec, execute

    spec = RunSpec(name=init, dataset=setup["data"], activation="relu", hidden=setup["sizes"][1:-1], init=init,
                   optimizer="adam", epochs=setup["epochs"], init_seed=init_seed, order_seed=order_seed)
    # the single-model trainer: its arithmetic decides whether rounding splits units that started equal
    (record,) = execute([spec], data=(X, y, X[:0], y[:0]), single=True, diagnostics=False, keep=True)
    assert record.artifacts is not None  # keep=True keeps them
    model = record.artifacts.model
    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    first = model.linears[0]
    rows = torch.cat([first.weight.detach(), first.bias.detach()[:, None]], 1)  # (units, in + 1)
    distinct = int(torch.unique(rows, dim=0).shape[0])
    return {k: list(map(float, v)) for k, v in record.history.items()}, params, distinct


def run(quick: bool, seed: int) -> PaperResult:
    random_seeds = [seed] if quick else [seed, seed + 1, seed + 2]
    final_accuracy: dict[str, dict[str, float]] = {}
    curves: dict[str, dict[str, dict[str, list[float]]]] = {}
    chance: dict[str, float] = {}
    identical: dict[str, dict[str, bool]] = {}
    distinct: dict[str, dict[str, int]] = {}
    for setup_name, setup in _setups(quick).items():
        X, y = _data(setup["data"], seed)
        chance[setup_name] = float(np.bincount(y).max() / len(y))
        final_accuracy[setup_name], curves[setup_name], distinct[setup_name] = {}, {}, {}
        for init in INITS:
            seeds = random_seeds if init in RANDOM else [seed]
            runs = [_train(setup, X, y, init, s, order_seed=seed) for s in seeds]
            final_accuracy[setup_name][init] = float(np.mean([h["accuracy"][-1] for h, _, _ in runs]))
            distinct[setup_name][init] = runs[0][2]
            curves[setup_name][init] = {"loss": runs[0][0]["loss"], "accuracy": runs[0][0]["accuracy"]}
            if init == "hadamard_identity":
                (h0, p0, _), (h1, p1, _) = runs[0], _train(setup, X, y, init, seed + 1, order_seed=seed)
                he0, he1 = (_train(setup, X, y, "he_normal", s, order_seed=seed)[1] for s in (seed, seed + 1))
                identical[setup_name] = {
                    "zero_history_equal": h0 == h1, "zero_params_equal": bool(torch.equal(p0, p1)),
                    "he_normal_params_equal": bool(torch.equal(he0, he1)),
                }
    seed_identical = all(v["zero_history_equal"] and v["zero_params_equal"] for v in identical.values())
    random_mean = {s: float(np.mean([final_accuracy[s][i] for i in RANDOM])) for s in final_accuracy}
    # rounded, and + 0.0 so that an exact tie prints as 0.0, not -0.0
    gap = {s: round(final_accuracy[s]["hadamard_identity"] - random_mean[s], 6) + 0.0 for s in final_accuracy}
    zeros_excess = {s: final_accuracy[s]["zeros"] - chance[s] for s in final_accuracy}
    claims = [
        Claim(
            "zeros_cannot_train",
            "All-zeros init cannot train an MLP: every hidden unit gets the same gradient, so the net stays at the "
            "majority-class rate.",
            clean({"final_accuracy_zeros": {s: final_accuracy[s]["zeros"] for s in final_accuracy},
                   "majority_class_rate": chance}),
            bool(all(v <= CHANCE_TOL for v in zeros_excess.values())),
            f"final_accuracy[zeros] <= majority-class rate + {CHANCE_TOL} in every setup",
        ),
        Claim(
            "zero_trains_as_well_as_random",
            "ZerO (zeros, ones and a Hadamard block, no random draw) trains as well as random init (the paper's "
            "experiments).",
            clean({"final_accuracy_zero": {s: final_accuracy[s]["hadamard_identity"] for s in final_accuracy},
                   "final_accuracy_random_mean": random_mean, "gap": gap,
                   "distinct_first_layer_units_after_training": distinct}),
            bool(all(g >= -AS_WELL_TOL for g in gap.values())),
            f"final_accuracy[ZerO] >= mean(final_accuracy[he_normal], final_accuracy[glorot_uniform]) - "
            f"{AS_WELL_TOL} in every setup",
            note="ZerO's Hadamard block for a layer with few inputs repeats rows (H_m[:out, :in] depends on the low "
                 "bits of the row index only), so at init a 2-input layer has 2 distinct units; the distinct units "
                 "after training are measured above, next to zeros' 1.",
        ),
        Claim(
            "zero_is_deterministic",
            "ZerO is deterministic: two different init seeds give the same network, hence identical training runs.",
            clean({"runs": identical}),
            bool(seed_identical),
            "with init seeds seed and seed+1 (same minibatch order): ZerO's per-epoch loss and accuracy and final "
            "parameters are bit-identical, in every setup",
            note="he_normal_params_equal shows that the same comparison does tell two random inits apart.",
        ),
    ]
    setups = _setups(quick)
    return PaperResult(
        name="zhao2022", title=PAPER.title, citation=PAPER.citation, quick=quick, seed=seed, claims=claims,
        measured=clean({"final_accuracy": final_accuracy, "seed_identical": seed_identical}),
        setup=("ReLU MLPs with zero biases, Adam (Keras defaults, batch 32), training accuracy after a fixed budget: "
               + "; ".join(f"{n} on {s['data']} ({s['epochs']} epochs)" for n, s in setups.items())
               + f". Inits: zeros, ZerO (initlab's hadamard_identity), he_normal and glorot_uniform (mean of "
               f"{len(random_seeds)} init seed(s)). ZerO is run again with another init seed, he_normal too, and "
               "the runs compared bit for bit."),
        differences=("The paper trains ResNets on CIFAR-10 and ImageNet and Transformers (with ZerO's residual "
                     "variant); here small MLPs on two-moons and 8x8 digits, plain Algorithm 1, on 2 CPU cores. "
                     "The paper reports test accuracy; this reports training accuracy, since the question is "
                     "whether an init lets a net train at all (the seed's zero-init experiment)."),
        data=clean({"curves": curves, "chance": chance, "labels": LABELS}),
    )


def figures(result: PaperResult) -> dict[str, Figure]:
    from matplotlib.figure import Figure

    from ..plots.style import init_color, styled

    @styled
    def training() -> Figure:
        curves = result.data["curves"]
        fig = Figure(figsize=(11, 4.2))
        axes = fig.subplots(1, len(curves))
        for ax, (setup, by_init) in zip(np.atleast_1d(axes), curves.items(), strict=False):
            for init, curve in by_init.items():
                epochs = np.arange(1, len(curve["accuracy"]) + 1)
                ax.plot(epochs, curve["accuracy"], color=init_color(init), lw=2 if init == "hadamard_identity" else 1.5,
                        ls="--" if init == "zeros" else "-", label=result.data["labels"][init])
            ax.axhline(result.data["chance"][setup], color="grey", lw=0.8, ls=":", label="majority class")
            ax.set(title=setup, xlabel="epoch", ylabel="training accuracy", ylim=(0, 1.02))
            ax.legend(loc="lower right", fontsize=8)
        fig.suptitle("Zhao et al. 2022: ZerO trains like random init, all-zeros does not")
        return fig

    return {"training": training()}


PAPER = Paper(
    name="zhao2022",
    title="ZerO Initialization: Initializing Neural Networks with only Zeros and Ones",
    citation="Zhao, Schäfer & Anandkumar, TMLR 2022",
    summary="ZerO (identity/Hadamard, deterministic) trains like He/Glorot where all-zeros cannot",
    run=run,
    figures=figures,
)
