"""Stability across depth of each activation at the scale autoinit chose (mean-field theory).

For pre-activations u ~ N(0, q) and weights scaled so that q is a fixed point of the length map
(sigma_w2 = q / E[phi(u)^2]), Poole et al. 2016 and Schoenholz et al. 2017 give:

* chi_1 = sigma_w2 E[phi'(u)^2]: the mean squared singular value of one layer's Jacobian;
  over n layers gradients scale by about chi_1^n;
* the slope of the length map at q, sigma_w2 d/dq E[phi(sqrt(q) z)^2]: below 1 the fixed
  point attracts (a perturbed input scale returns), above 1 it repels (inputs of a slightly
  different scale explode or collapse with depth).

A scalar init can only choose q (the target std). If no q in [1e-4, 1e4] gives |chi_1 - 1| <=
0.05 with an attracting (or marginal) fixed point, no scalar init keeps the signal stable: for
phi = relu(x)^k the map is homogeneous, chi_1 = k^2/(2k-1) at every scale (4/3 for k = 2,
9/5 for k = 3) and the slope is k.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .moments import Stat, slopes

__all__ = ["stability_rows"]

_GRID = np.logspace(-4, 4, 33)
_SLOPE_TOL = 1.01          # a length-map slope up to this counts as marginal (relu: exactly 1)
_CHI_TOL = 0.05            # |chi_1 - 1| within this is near-critical
_GAIN_LIMIT = 10.0         # chi_1^n or slope^n beyond this factor over the model's depth is unstable


def _at(fn: Callable, q: float) -> tuple[float, float] | None:
    s = slopes(fn, q)
    if s is None or s[0] <= 0:
        return None
    e_phi2, e_dphi2, dq = s
    sigma_w2 = q / e_phi2
    return sigma_w2 * e_dphi2, sigma_w2 * dq


def stability_rows(activations: list[tuple[str, Callable, Stat]], target: float) -> list[dict]:
    """One dict per activation label: chi_1, slope, depth count, gains over depth, stable, message."""
    groups: dict[str, list[tuple[Callable, Stat]]] = {}
    for label, fn, st in activations:
        groups.setdefault(label, []).append((fn, st))
    rows = []
    for label, items in groups.items():
        fn, st = items[0]
        n = len(items)
        q = max(st.var, 1e-12)
        here = _at(fn, q)
        if here is None:
            rows.append({"activation": label, "layers": n, "q": q, "chi_1": None, "length_slope": None, "stable": True,
                         "message": f"{label} (x{n}): no autograd derivative, chi_1 not computed"})
            continue
        chi, slope = here
        grid = [(g, _at(fn, float(g))) for g in _GRID]
        good = [(g, v) for g, v in grid if v is not None and abs(v[0] - 1) <= _CHI_TOL and v[1] <= _SLOPE_TOL]
        fixable = bool(good)
        grad_gain = chi**n
        slope_gain = max(slope, 1.0) ** n
        ok_here = (1 / _GAIN_LIMIT <= grad_gain <= _GAIN_LIMIT) and slope_gain <= _GAIN_LIMIT
        stable = ok_here or fixable
        std = math.sqrt(q)
        head = (f"{label} (x{n}) at pre-activation std {std:.3g}: chi_1 = {chi:.3g} "
                f"(gradients x{grad_gain:.3g} over {n} layers), length-map slope {slope:.3g}")
        if ok_here:
            msg = head + " - stable"
        elif fixable:
            g, (c, s) = min(good, key=lambda gv: abs(math.log(gv[0] / q)))  # the nearest good scale
            msg = (head + f" - a scalar fixes it: target_std = {math.sqrt(g):.3g} gives chi_1 = {c:.3g}, slope {s:.3g}")
        else:
            chis = [v[0] for _, v in grid if v is not None]
            rng = f"{min(chis):.3g}..{max(chis):.3g}" if chis else "n/a"
            msg = (head + f" - UNSTABLE: no scalar init keeps the signal stable (chi_1 stays in {rng} for every "
                   "scale from 1e-2 to 1e2 std, and the fixed point of the length map repels: inputs of another "
                   "scale explode or vanish with depth). Put a normalization (LayerNorm) before each such layer, "
                   "or use an activation with chi_1 -> 1 (relu, gelu, tanh at small scale)")
        rows.append({"activation": label, "layers": n, "q": q, "chi_1": chi, "length_slope": slope,
                     "gradient_gain": grad_gain, "fixable_by_scale": fixable, "stable": stable, "message": msg})
    return rows
