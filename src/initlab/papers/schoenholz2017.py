"""Schoenholz et al. 2017: deep tanh nets train only up to about 6 xi_c layers.

"Deep Information Propagation" (ICLR 2017), section 5 and Figure 5: random tanh networks with
weights ``N(0, sigma_w2 / fan_in)`` and biases ``N(0, sigma_b2)`` propagate the correlation
between two inputs over a depth scale ``xi_c = -1 / ln(chi_c)`` (mean-field theory, eq. 9),
which diverges on the order-chaos boundary (chi_1 = 1, sigma_w2 ~ 1.76 at sigma_b2 = 0.05).
Trained for a fixed budget over a grid of (sigma_w2, depth), networks train where
``depth <~ 6 xi_c`` and fail beyond: the trainable region is a band around the critical point
whose edge follows the ``6 xi_c`` curve. ``xi_c`` comes from initlab's
:class:`~initlab.theory.MeanField`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ._base import Claim, Paper, PaperResult
from ._common import clean, histories

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SIGMA_B2 = 0.05
WIDTH = 32
OPTIMIZER, LR, BATCH = "rmsprop", 1e-4, 32
TRAINED = 0.3  # final training accuracy that counts as "trained": three times chance on 10 balanced classes
INSIDE_MIN, OUTSIDE_MAX = 0.75, 0.25  # the claim: most cells inside the curve train, most outside do not


def _settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"sigma_w2": [1.0, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0], "depths": [10, 25, 60], "epochs": 15}
    return {"sigma_w2": [round(1.0 + 0.25 * i, 2) for i in range(13)], "depths": [10, 20, 30, 45, 60, 80, 100],
            "epochs": 20}


def trainable_depth(sigma_w2: float) -> float:
    """``6 xi_c`` for tanh at ``sigma_b2 = 0.05`` (Schoenholz et al. 2017, section 5); inf at the critical point."""
    from ..theory import MeanField

    return 6.0 * MeanField("tanh", sigma_w2, SIGMA_B2).xi_c


def _train_depth(depth: int, sigmas: list[float], epochs: int, X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Final training accuracy ``(len(sigmas),)`` of ``depth``-layer tanh nets, one per sigma_w2, trained together."""
    from ..experiments import RunSpec, execute

    specs = [RunSpec(name=f"{depth}-{s}", dataset="digits", activation="tanh", hidden=[WIDTH] * depth,
                     init={"name": "variance_scaling", "scale": s, "mode": "fan_in", "distribution": "normal"},
                     bias_init={"name": "normal", "std": math.sqrt(SIGMA_B2)}, optimizer=OPTIMIZER, learning_rate=LR,
                     epochs=epochs, batch_size=BATCH, init_seed=seed * 1000 + depth * 10 + i, order_seed=seed)
             for i, s in enumerate(sigmas)]
    records = list(execute(specs, data=(X, y, X[:0], y[:0]), diagnostics=False))
    acc = histories(records, "accuracy")  # (M, epochs); NaN after a model diverged
    last = np.array([row[np.isfinite(row)][-1] if np.isfinite(row).any() else 0.0 for row in acc])
    last[[r.diverged_epoch is not None for r in records]] = 0.0  # a diverged net did not train
    return last


def run(quick: bool, seed: int) -> PaperResult:
    from ..datasets import digits

    cfg = _settings(quick)
    X, y = digits(seed=seed)
    X, y = X[:1500], y[:1500]  # the training rows; the rest is left out as in the other papers' digits split
    sigmas, depths = cfg["sigma_w2"], cfg["depths"]
    accuracy = np.stack([_train_depth(d, sigmas, cfg["epochs"], X, y, seed) for d in depths])  # (depths, sigmas)
    limit = np.array([trainable_depth(s) for s in sigmas])  # (sigmas,)
    inside = np.array(depths)[:, None] <= limit[None, :]  # (depths, sigmas)
    trained = accuracy >= TRAINED
    frac_in = float(trained[inside].mean()) if inside.any() else None
    frac_out = float(trained[~inside].mean()) if (~inside).any() else None
    deepest = {str(s): max((d for d, ok in zip(depths, trained[:, j], strict=False) if ok), default=0) for j, s in enumerate(sigmas)}
    claims = [
        Claim(
            "trainable_within_6_xi_c",
            "Random tanh networks train when their depth is below about 6 xi_c and fail beyond it (section 5).",
            clean({"trainable_fraction_inside": frac_in, "trainable_fraction_outside": frac_out,
                   "cells_inside": int(inside.sum()), "cells_outside": int((~inside).sum())}),
            bool(frac_in is not None and frac_out is not None and frac_in >= INSIDE_MIN and frac_out <= OUTSIDE_MAX),
            f"cell trained = final training accuracy >= {TRAINED}; trainable_fraction_inside (depth <= 6 xi_c) >= "
            f"{INSIDE_MIN} and trainable_fraction_outside <= {OUTSIDE_MAX}",
            note=f"a fixed budget of {cfg['epochs']} epochs: 6 xi_c bounds the depth that can train at all; deep "
                 "nets inside the curve may still need more steps than the budget gives.",
        ),
        Claim(
            "deepest_near_criticality",
            "The deepest trainable networks sit near the order-chaos boundary (chi_1 = 1, sigma_w2 ~ 1.76), where "
            "xi_c diverges.",
            clean({"deepest_trained_depth": deepest, "critical_sigma_w2": _critical()}),
            bool(_deepest_is_near_critical(deepest)),
            "the largest deepest_trained_depth over sigma_w2 is reached at a sigma_w2 within 0.75 of the critical "
            "value, and it is larger than the deepest depth trained at sigma_w2 = 4",
        ),
    ]
    grid = {"sigma_w2": sigmas, "depths": depths, "accuracy": accuracy, "six_xi_c": limit, "inside": inside}
    return PaperResult(
        name="schoenholz2017", title=PAPER.title, citation=PAPER.citation, quick=quick, seed=seed, claims=claims,
        measured=clean({"trainable_fraction_inside": frac_in, "trainable_fraction_outside": frac_out, "grid": grid}),
        setup=(f"tanh MLPs of width {WIDTH}, weights N(0, sigma_w2/fan_in) for sigma_w2 in {sigmas}, biases "
               f"N(0, {SIGMA_B2}), depths {depths} hidden layers; each trained on the first 1500 of sklearn's digits "
               f"(softmax, cross-entropy) by RMSprop (lr {LR}, batch {BATCH}) for {cfg['epochs']} epochs with "
               "initlab's batched trainer (one stack per depth). A cell is trained when its final training "
               f"accuracy is >= {TRAINED}; 6 xi_c from initlab.theory.MeanField('tanh', sigma_w2, {SIGMA_B2})."),
        differences=("The paper trains much wider nets on MNIST and CIFAR-10 for longer, to depths of several hundred "
                     f"layers, on a finer grid; here width {WIDTH}, the 8x8 digits, depths to 100 and a few hundred "
                     "steps "
                     "so that the grid runs on 2 CPU cores in minutes. Narrow nets sit further from the mean-field "
                     "limit, and a short budget under-trains the deepest nets inside the curve."),
        data=clean({"curve_sigma_w2": list(np.linspace(1.0, 4.0, 61)),
                    "curve_six_xi_c": [trainable_depth(s) for s in np.linspace(1.0, 4.0, 61)],
                    "trained_threshold": TRAINED, "epochs": cfg["epochs"]}),
    )


def _critical() -> float:
    from ..theory import critical_sigma_w2

    return float(critical_sigma_w2("tanh", SIGMA_B2))


def _deepest_is_near_critical(deepest: dict[str, int]) -> bool:
    sigmas = [float(s) for s in deepest]
    best = max(deepest.values())
    at = [s for s in sigmas if deepest[str(s)] == best]
    return best > 0 and any(abs(s - _critical()) <= 0.75 for s in at) and best > deepest[str(sigmas[-1])]


def figures(result: PaperResult) -> dict[str, Figure]:
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from ..plots.style import styled

    @styled
    def heatmap() -> Figure:
        grid = result.measured["grid"]
        sigmas, depths = np.array(grid["sigma_w2"]), np.array(grid["depths"])
        acc = np.array(grid["accuracy"], dtype=float)
        fig = Figure(figsize=(7.5, 5))
        ax = fig.subplots()
        # cell edges halfway between grid points
        def edges(v: np.ndarray) -> np.ndarray:
            mid = (v[1:] + v[:-1]) / 2
            return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
        mesh = ax.pcolormesh(edges(sigmas), edges(depths), acc, cmap="viridis", norm=Normalize(0, 1), shading="flat")
        fig.colorbar(mesh, ax=ax, label=f"training accuracy after {result.data['epochs']} epochs")
        curve_s = np.array(result.data["curve_sigma_w2"])
        curve = np.array([np.inf if v is None else v for v in result.data["curve_six_xi_c"]], dtype=float)
        ax.plot(curve_s, curve, color="white", lw=2.2, label="6 xi_c (mean-field theory)")
        ax.axvline(_critical(), color="white", lw=1, ls=":", label=f"critical sigma_w2 = {_critical():.2f}")
        trained = acc >= result.data["trained_threshold"]
        for i, d in enumerate(depths):
            for j, s in enumerate(sigmas):
                ax.text(s, d, f"{acc[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                        color="black" if trained[i, j] else "white")
        ax.set(ylim=(edges(depths)[0], edges(depths)[-1]), xlim=(edges(sigmas)[0], edges(sigmas)[-1]),
               xlabel="sigma_w^2", ylabel="depth (hidden layers)",
               title=f"Schoenholz et al. 2017: tanh nets, sigma_b^2 = {SIGMA_B2}, width {WIDTH}")
        threshold = result.data["trained_threshold"]
        ax.plot([], [], "s", color="black", ms=0, label=f"numbers: accuracy; black text: trained (>= {threshold})")
        fig.legend(loc="lower center", ncol=3, fontsize=8, facecolor="#555555", labelcolor="white", framealpha=1.0,
                   bbox_to_anchor=(0.45, 0.0))
        fig.subplots_adjust(bottom=0.19)
        return fig

    return {"heatmap": heatmap()}


PAPER = Paper(
    name="schoenholz2017",
    title="Deep Information Propagation",
    citation="Schoenholz, Gilmer, Ganguli & Sohl-Dickstein, ICLR 2017",
    summary="tanh nets train up to ~6 xi_c layers: accuracy over (sigma_w2, depth) against the mean-field curve",
    run=run,
    figures=figures,
)
