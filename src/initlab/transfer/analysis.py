"""From cells to the best learning rate per width and its drift across widths (or depths).

Per width (or depth) ``k``, the curve is the mean over seeds of ``log(loss)`` at each
``x = log2(lr)`` (a diverged cell counts as the worst loss of the grid). The best ``log2 lr``
is the vertex of the parabola through the grid minimum and its two neighbours (clipped to
them), so it moves continuously between grid points; at an edge of the grid it is the edge
and flagged. The drift is the least-squares slope of best ``log2 lr`` against ``log2 width``:
octaves of learning rate per doubling of width. Its interval is a percentile bootstrap over
seeds: each replicate resamples the seeds of every width with replacement and recomputes
every best lr and the slope (Efron & Tibshirani 1993, ch. 13).

Verdict (tolerance :data:`TOLERANCE` octave per doubling):
``transfers`` when the whole interval lies within ``[-tol, tol]``; ``drifts`` when the interval
excludes 0 and the estimate lies outside ``[-tol, tol]``; ``undetermined`` otherwise, or when a
best lr sits at the edge of the learning-rate grid (the valley is not inside the grid), or with
one seed (a bootstrap over one seed has no spread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TOLERANCE", "BOOTSTRAP", "best_log2_lr", "Drift", "drift", "valley"]

TOLERANCE = 0.25  # octave of lr per doubling: the acceptance band for "transfers"
BOOTSTRAP = 1000  # replicates


def best_log2_lr(x: np.ndarray, curve: np.ndarray) -> tuple[float, bool]:
    """``(best log2 lr, at_edge)`` of one curve (``x`` sorted ascending, ``curve`` finite)."""
    i = int(np.argmin(curve))
    if i == 0 or i == len(x) - 1:
        return float(x[i]), True
    x0, x1, x2 = x[i - 1:i + 2]
    y0, y1, y2 = curve[i - 1:i + 2]
    # vertex of the parabola through three points (uneven spacing allowed)
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
    b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / den
    if a <= 0:
        return float(x1), False
    return float(np.clip(-b / (2 * a), x0, x2)), False


def valley(losses: np.ndarray, worst: float) -> np.ndarray:
    """``log(loss)`` with diverged cells (nan) set to ``log(worst)``: (seeds, lrs) -> same shape."""
    out = np.log(np.where(np.isfinite(losses), np.maximum(losses, 1e-12), worst))
    return out


@dataclass
class Drift:
    """The drift of the best lr along one axis for one parametrization."""

    parametrization: str
    axis: str  # "width" or "depth"
    sizes: list[int]
    best_log2_lr: list[float]  # per size, from all seeds
    best_interval: list[list[float]]  # per size, 95% bootstrap interval
    at_edge: list[bool]
    octaves_per_doubling: float
    interval: list[float]
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"parametrization": self.parametrization, "axis": self.axis,
                "octaves_per_doubling": _num(self.octaves_per_doubling), "interval": [_num(v) for v in self.interval],
                "verdict": self.verdict, "sizes": self.sizes,
                "best_log2_lr": [_num(v) for v in self.best_log2_lr],
                "best_log2_lr_interval": [[_num(a), _num(b)] for a, b in self.best_interval],
                "at_edge": self.at_edge}


def _num(v: float) -> float | None:
    return round(float(v), 4) if v is not None and math.isfinite(v) else None


def _slope(sizes: np.ndarray, best: np.ndarray) -> float:
    return float(np.polyfit(np.log2(sizes), best, 1)[0])


def verdict(estimate: float, lo: float, hi: float, edge: bool, tolerance: float = TOLERANCE) -> str:
    """transfers / drifts / undetermined (see the module docstring)."""
    if edge or not all(math.isfinite(v) for v in (estimate, lo, hi)):
        return "undetermined"
    if -tolerance <= lo and hi <= tolerance:
        return "transfers"
    if (lo > 0 or hi < 0) and abs(estimate) > tolerance:
        return "drifts"
    return "undetermined"


def drift(parametrization: str, axis: str, log2_lrs: np.ndarray, losses: dict[int, np.ndarray], *, seed: int = 0,
          replicates: int = BOOTSTRAP, tolerance: float = TOLERANCE) -> Drift:
    """Best lr per size and its drift. ``losses[size]``: (seeds, lrs) array of losses (nan: diverged),
    columns in the order of ``log2_lrs`` (sorted ascending)."""
    sizes = sorted(losses)
    x = np.asarray(log2_lrs, dtype=float)
    finite = np.concatenate([v[np.isfinite(v)] for v in losses.values()])
    worst = float(finite.max()) if finite.size else 1.0
    curves = {k: valley(np.asarray(losses[k], dtype=float), worst) for k in sizes}
    point = [best_log2_lr(x, curves[k].mean(0)) for k in sizes]
    best = np.array([b for b, _ in point])
    edge = [e for _, e in point]
    estimate = _slope(np.array(sizes, float), best) if len(sizes) >= 2 else float("nan")
    rng = np.random.default_rng(seed)
    reps = np.empty((replicates, len(sizes)))
    for j, k in enumerate(sizes):
        c = curves[k]
        picks = rng.integers(0, c.shape[0], size=(replicates, c.shape[0]))
        means = c[picks].mean(1)  # (replicates, lrs)
        reps[:, j] = [best_log2_lr(x, row)[0] for row in means]
    per_size = [[float(np.percentile(reps[:, j], 2.5)), float(np.percentile(reps[:, j], 97.5))]
                for j in range(len(sizes))]
    if len(sizes) >= 2:
        logs = np.log2(np.array(sizes, float))
        centred = logs - logs.mean()
        slopes = (reps - reps.mean(1, keepdims=True)) @ centred / (centred @ centred)
        lo, hi = float(np.percentile(slopes, 2.5)), float(np.percentile(slopes, 97.5))
    else:
        lo = hi = float("nan")
    one_seed = min(curves[k].shape[0] for k in sizes) < 2  # a bootstrap over one seed has no spread to show
    return Drift(parametrization, axis, sizes, best.tolist(), per_size, edge, estimate, [lo, hi],
                 "undetermined" if one_seed else verdict(estimate, lo, hi, any(edge), tolerance))
