"""Saxe, McClelland & Ganguli 2014: learning time of deep linear nets, orthogonal vs scaled Gaussian.

"Exact solutions to the nonlinear dynamics of learning in deep linear neural networks": trained by
full-batch gradient descent on squared error from whitened inputs, a deep *linear* net's learning
depends on the input-output correlation ``Sigma31`` and on the init. With random orthogonal
weights the end-to-end product is an isometry (all singular values 1, "dynamical isometry"), and
at the best learning rate the time to learn stays about constant as depth grows; with scaled Gaussian weights
``N(0, 1/N)`` the product's singular values spread out with
depth (its norm is kept only on average) and learning slows down with depth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ._base import Claim, Paper, PaperResult
from ._common import clean, epochs_to_threshold, histories

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..experiments.execute import Split
    from ..runspec import RunSpec

INITS = {"orthogonal": "orthogonal", "gaussian": "lecun_normal"}  # scaled Gaussian: N(0, 1/fan_in)
WIDTH = 16  # whitened input dimensions and hidden units
ROWS = 64  # training rows (exactly whitened: only Sigma31 matters for the dynamics)
LR_GRID = [float(v) for v in 10 ** np.arange(-3.0, 0.76, 0.25)]  # log grid, 1e-3 .. 10^0.75
QUANTILES = (0.05, 0.5, 0.95)
EXPLAINED = 0.9  # learned = the training loss has covered 90 % of the way from the zero map to the optimum


def _settings(quick: bool) -> dict[str, Any]:
    return ({"depths": [2, 4, 8, 16, 32], "max_epochs": 400, "draws": 10} if quick
            else {"depths": [2, 4, 8, 16, 32, 64], "max_epochs": 2000, "draws": 20})


def whitened_digits(seed: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """``ROWS`` digits, PCA-whitened to ``WIDTH`` dims (``X^T X / n = I``) and centred one-hot targets scaled to
    unit mean square; returns ``X, Y``, the zero map's loss and the least-squares optimum's loss (mse)."""
    from ..datasets import digits

    X, y = digits(seed=seed)
    X, y = X[:ROWS].astype(np.float64), y[:ROWS]
    X = X - X.mean(0)
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    Xw = u[:, :WIDTH] * np.sqrt(ROWS)  # (n, WIDTH): exactly whitened
    Y = np.eye(10)[y]
    Y = Y - Y.mean(0)
    Y = Y / np.sqrt((Y ** 2).mean())  # mse of the zero map = 1
    W_star = Y.T @ Xw / ROWS  # (10, WIDTH): least squares on whitened inputs
    best = float(((Xw @ W_star.T - Y) ** 2).mean())
    return Xw.astype(np.float32), Y.astype(np.float32), float((Y ** 2).mean()), best


def _spec(init: str, depth: int, lr: float, epochs: int, seed: int) -> RunSpec:
    """A deep linear net without biases, squared error, full-batch gradient descent at ``lr``."""
    from ..experiments import RunSpec

    return RunSpec(name=f"{init}-{depth}-{lr:g}", dataset="digits", activation="linear", hidden=[WIDTH] * (depth - 1),
                   init=init, bias=False, loss="mse", optimizer="sgd", learning_rate=lr, epochs=epochs,
                   full_batch=True, seed=seed)


def run(quick: bool, seed: int) -> PaperResult:
    from ..experiments import execute

    cfg = _settings(quick)
    X, Y, zero_loss, best_loss = whitened_digits(seed)
    threshold = best_loss + (1 - EXPLAINED) * (zero_loss - best_loss)
    names = list(INITS)
    learning_time: dict[str, dict[str, int | None]] = {n: {} for n in names}
    best_lr: dict[str, dict[str, float | None]] = {n: {} for n in names}
    curves: dict[str, dict[str, list[float | None]]] = {n: {} for n in names}
    quantiles: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    for depth in cfg["depths"]:
        specs = [_spec(INITS[n], depth, lr, cfg["max_epochs"], seed) for n in names for lr in LR_GRID]
        records = list(execute(specs, data=(X, Y, X[:0], Y[:0]), callbacks=[_StopWhenLearned(threshold, len(names))],
                               diagnostics=False))
        loss = histories(records).reshape(len(names), len(LR_GRID), -1)
        for i, n in enumerate(names):
            times = [epochs_to_threshold(row, threshold) for row in loss[i]]
            reached = [(t, k) for k, t in enumerate(times) if t is not None]
            t_best, k_best = min(reached) if reached else (None, None)
            learning_time[n][str(depth)] = t_best
            best_lr[n][str(depth)] = None if k_best is None else clean(LR_GRID[k_best])
            curves[n][str(depth)] = clean(loss[i, k_best if k_best is not None else 0])
            quantiles[n][str(depth)] = clean(_product_singular_quantiles(specs[i * len(LR_GRID)], seed, cfg["draws"],
                                                                         (X, Y, X[:0], Y[:0])))

    depths = [str(d) for d in cfg["depths"]]
    cap = cfg["max_epochs"]

    def censored(t: int | None) -> int:
        return cap + 1 if t is None else t

    orth = [learning_time["orthogonal"][d] for d in depths]
    gauss = [learning_time["gaussian"][d] for d in depths]
    orth_learned = [t for t in orth if t is not None]
    spread = {n: {d: clean(quantiles[n][d][-1] / quantiles[n][d][0]) for d in depths} for n in names}
    claims = [
        Claim(
            "orthogonal_depth_independent",
            "With random orthogonal init, the learning time at the best learning rate stays about constant as "
            "depth grows.",
            {"learning_time_orthogonal": learning_time["orthogonal"]},
            bool(len(orth_learned) == len(orth) and max(orth_learned) <= 2 * min(orth_learned)),
            f"every depth learns within {cap} epochs and max / min learning time over depths {', '.join(depths)} <= 2",
        ),
        Claim(
            "gaussian_slows_with_depth",
            "With scaled Gaussian init N(0, 1/N), learning slows down as depth grows.",
            {"learning_time_gaussian": learning_time["gaussian"]},
            bool(censored(gauss[-1]) >= 2 * censored(gauss[0])),
            f"learning time at depth {depths[-1]} >= 2 x learning time at depth {depths[0]} "
            f"(not learned within {cap} epochs counts as {cap + 1})",
        ),
        Claim(
            "gaussian_spectrum_spreads",
            "At init the scaled Gaussian product's singular values spread out with depth (its norm is kept only on "
            "average).",
            {"singular_value_spread_q95_q05": {"gaussian": spread["gaussian"]}},
            bool(spread["gaussian"][depths[-1]] > 10 * spread["gaussian"][depths[0]]),
            f"gaussian: q95/q05 at depth {depths[-1]} > 10 x that at depth {depths[0]}",
        ),
        Claim(
            "orthogonal_isometry",
            "At init the orthogonal net's end-to-end map is an isometry (all singular values 1).",
            {"singular_value_spread_q95_q05": {"orthogonal": spread["orthogonal"]}},
            bool(all(abs(q - 1) < 1e-3 for d in depths for q in quantiles["orthogonal"][d])),
            "orthogonal: every quantile within 1e-3 of 1",
            note="A product of orthogonal square matrices is orthogonal: this checks the init's implementation, not "
                 "the paper (shown, not counted).",
            by_construction=True,
        ),
    ]
    if not claims[0].holds:
        claims[0].note = _orthogonal_note(orth, depths, best_lr["orthogonal"])
    return PaperResult(
        name="saxe2014", title=PAPER.title, citation=PAPER.citation, quick=quick, seed=seed, claims=claims,
        measured={"learning_time": learning_time, "singular_value_quantiles": quantiles, "best_learning_rate": best_lr,
                  "loss_threshold": clean(threshold), "optimal_loss": clean(best_loss)},
        setup=(f"Deep linear nets (no biases) of depth {', '.join(depths)} weight layers, {WIDTH} units wide, "
               f"on {ROWS} of sklearn's digits PCA-whitened to {WIDTH} dimensions (X^T X / n = I), targets the "
               f"centred one-hot labels scaled to unit mean square. Squared error, full-batch gradient descent, "
               f"every learning rate of a log grid ({LR_GRID[0]:g} to {LR_GRID[-1]:.3g}, {len(LR_GRID)} values) "
               f"trained in one stack; the learning time at a depth is the fewest epochs over the grid until "
               f"the training loss is <= {threshold:.4f} ({EXPLAINED:.0%} of the way from the zero map's loss to "
               f"the least-squares optimum), at most {cap} epochs. Singular values of the end-to-end product at "
               f"init: quantiles {QUANTILES} pooled over {cfg['draws']} draws."),
        differences=("The paper trains on MNIST (and analyses input-output modes) with depths up to 100 and "
                     "1000-unit layers; here 64 whitened digits and 16-unit layers keep a learning-rate grid at "
                     "every depth to minutes on a CPU. Whitening makes the dynamics depend only on Sigma31, as in the "
                     "paper's analysis, so few rows suffice."),
        data={"curves": curves, "threshold": threshold, "depths": cfg["depths"], "max_epochs": cap,
              "quantiles": list(QUANTILES)},
    )


class _Stoppable(Protocol):
    """What the callback uses of the batched trainer (papers import no trainer)."""

    stop_training: bool


class _StopWhenLearned:
    """Stop once every init has some learning rate at or below the threshold (slower ones cannot beat it)."""

    def __init__(self, threshold: float, n_inits: int) -> None:
        self.threshold, self.n_inits = threshold, n_inits

    def on_epoch_end(self, trainer: _Stoppable, epoch: int, logs: dict[str, Any]) -> None:
        loss = logs["loss"].reshape(self.n_inits, -1)
        if all((np.nan_to_num(row, nan=np.inf) <= self.threshold).any() for row in loss):
            trainer.stop_training = True


def _product_singular_quantiles(spec: RunSpec, seed: int, draws: int, split: Split) -> list[float]:
    """Quantiles of the singular values of ``W_L ... W_1`` at init, pooled over ``draws`` weight draws."""
    import torch

    from ..experiments import initialized

    weights = initialized([spec.replace(init_seed=seed + k) for k in range(draws)], data=split).weights()
    product = weights[0].double()
    for weight in weights[1:]:
        product = torch.bmm(weight.double(), product)  # (draws, out, in)
    values = torch.linalg.svdvals(product).reshape(-1).numpy()
    return [float(np.quantile(values, q)) for q in QUANTILES]


def figures(result: PaperResult) -> dict[str, Figure]:
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    from ..plots.style import init_color, styled

    @styled
    def draw() -> Figure:
        fig = Figure(figsize=(11, 4))
        ax, ax2 = fig.subplots(1, 2)
        depths = result.data["depths"]
        cap = result.data["max_epochs"]
        for n, spec in INITS.items():
            times = [result.measured["learning_time"][n][str(d)] for d in depths]
            ok = [(d, t) for d, t in zip(depths, times, strict=False) if t is not None]
            if ok:
                ax.loglog(*zip(*ok, strict=False), marker="o", color=init_color(spec), lw=2, label=n if n == spec else f"{n} ({spec})")
            missed = [d for d, t in zip(depths, times, strict=False) if t is None]
            if missed:
                ax.loglog(missed, [cap] * len(missed), ls="none", marker="^", color=init_color(spec),
                          label=f"{n}: not learned in {cap} epochs")
            q = np.array([result.measured["singular_value_quantiles"][n][str(d)] for d in depths], dtype=float)
            ax2.fill_between(depths, q[:, 0], q[:, -1], color=init_color(spec), alpha=0.25)
            ax2.loglog(depths, q[:, 1], marker="o", color=init_color(spec), lw=2, label=f"{n}: median, 5-95 %")
        for a in (ax, ax2):
            a.set_xticks(depths, [str(d) for d in depths])
            a.xaxis.set_minor_locator(NullLocator())
        ax.set(title="learning time at the best learning rate", xlabel="depth (weight layers)",
               ylabel="epochs to the loss threshold")
        ax.legend()
        ax2.set(title="singular values of the end-to-end map at init", xlabel="depth (weight layers)",
                ylabel="singular value")
        ax2.legend()
        fig.suptitle("Saxe et al. 2014: deep linear nets, random orthogonal vs scaled Gaussian init")
        fig.tight_layout()
        return fig

    return {"saxe2014": draw()}


PAPER = Paper(
    name="saxe2014",
    title="Exact solutions to the nonlinear dynamics of learning in deep linear neural networks (Saxe et al. 2014)",
    citation=("A. M. Saxe, J. L. McClelland, S. Ganguli. Exact solutions to the nonlinear dynamics of learning in "
              "deep linear neural networks. ICLR 2014."),
    summary="deep linear nets: learning time vs depth, random orthogonal vs scaled Gaussian, and the product's spectrum",
    run=run,
    figures=figures,
)


def _orthogonal_note(orth: list[int | None], depths: list[str], best_lr: dict[str, float | None]) -> str:
    """Why depth independence failed, each clause only where the measured learning times say so."""
    times = [t for t in orth if t is not None]
    if len(times) != len(orth):
        return f"Orthogonal learning times over depth are {orth} epochs (None: not learned within the epoch budget)."
    flat_from = next((i for i in range(len(times) - 1) if max(times[i:]) <= 2 * min(times[i:])), None)
    text = f"Orthogonal learning times over depth are {orth} epochs"
    if flat_from is not None and flat_from > 0:
        text += f": within 2x of each other from depth {depths[flat_from]} on"
    if times[0] == min(times) and flat_from == 1:  # only the shallowest net falls outside the band
        lrs = [best_lr.get(d) for d in depths]
        first = lrs[0]
        larger = first is not None and all(r is not None and first > r for r in lrs[1:])
        text += (f", but the shallowest net learns in only {times[0]} epochs"
                 + (" at its (larger) best learning rate" if larger else "") + ", so the ratio exceeds 2")
        if max(times) - min(times) <= 2:
            text += (". Saxe et al.'s depth independence is a large-depth statement; at these few epochs a "
                     f"{max(times) - min(times)}-epoch difference is a large ratio")
    return text + "."
