"""Stability across depth of each activation at the scale autoinit chose (mean-field theory).

For pre-activations u ~ N(0, q) and weights scaled so that q is a fixed point of the length map
(sigma_w2 = q / E[phi(u)^2]), Poole et al. 2016 and Schoenholz et al. 2017 give:

* chi_1 = sigma_w2 E[phi'(u)^2]: the mean squared singular value of one layer's Jacobian, the
  factor by which one layer multiplies the *squared* norm of a back-propagated gradient
  (Schoenholz et al. 2017, eq. 5); over n layers the gradient norm changes by chi_1^(n/2). That
  is the quantity ``diagnose`` measures (first layer's gradient over the last's), judged against
  the same band (``diagnostics.thresholds.GRADIENT_BAND``: x1e-2..x1e2);
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
from typing import Any

import numpy as np
import torch

from ..diagnostics.thresholds import CHI_TOL, GRADIENT_BAND, LENGTH_SLOPE_TOL, in_band
from .moments import Stat, slopes

__all__ = ["stability_rows"]

_GRID = np.logspace(-4, 4, 33)
_SLOPE_TOL = LENGTH_SLOPE_TOL  # a length-map slope up to this counts as marginal (relu: exactly 1)
_CHI_TOL = CHI_TOL             # |chi_1 - 1| within this is near-critical


def gradient_change(chi_1: float, layers: int) -> float:
    """The gradient norm's change over ``layers`` layers of per-layer chi_1: chi_1^(layers/2).

    chi_1 scales the squared gradient norm per layer (Schoenholz et al. 2017), so the norm itself
    changes by its square root per layer. nan where it overflows.
    """
    try:
        gain: float = chi_1 ** (layers / 2)  # chi_1 >= 0, so the power is real
        return gain
    except OverflowError:
        return float("inf")


def _at(fn: Callable[[torch.Tensor], torch.Tensor], q: float) -> tuple[float, float] | None:
    s = slopes(fn, q)
    if s is None or s[0] <= 0:
        return None
    e_phi2, e_dphi2, dq = s
    sigma_w2 = q / e_phi2
    return sigma_w2 * e_dphi2, sigma_w2 * dq


def _critical_scales(fn: Callable[[torch.Tensor], torch.Tensor]) -> list[tuple[float, float, float]]:
    """(q, chi_1, slope) where chi_1 is within 0.05 of 1 and the length map's fixed point does not repel.

    Grid points first, then Brent-free bisection in log q between grid points where chi_1 - 1
    changes sign (a grid step is a factor 1.8 in q, which can jump over the band).
    """
    vals = [(float(g), _at(fn, float(g))) for g in _GRID]
    out = [(g, v[0], v[1]) for g, v in vals if v is not None and abs(v[0] - 1) <= _CHI_TOL and v[1] <= _SLOPE_TOL]
    for (g0, v0), (g1, v1) in zip(vals[:-1], vals[1:], strict=False):
        if v0 is None or v1 is None or (v0[0] - 1) * (v1[0] - 1) > 0:
            continue
        lo, hi, flo = math.log(g0), math.log(g1), v0[0] - 1
        for _ in range(40):
            mid = (lo + hi) / 2
            v = _at(fn, math.exp(mid))
            if v is None:
                break
            if (v[0] - 1) * flo > 0:
                lo, flo = mid, v[0] - 1
            else:
                hi = mid
        v = _at(fn, math.exp(lo))
        if v is not None and abs(v[0] - 1) <= _CHI_TOL and v[1] <= _SLOPE_TOL:
            out.append((math.exp(lo), v[0], v[1]))
    return out


def stability_rows(activations: list[tuple[str, Callable[[torch.Tensor], torch.Tensor], Stat]],
                   target: float) -> list[dict[str, Any]]:
    """One dict per activation label: chi_1, slope, depth count, stable, message, and ``gradient_gain``: the
    gradient norm's change over those layers, chi_1^(n/2) (stable needs it within ``GRADIENT_BAND``)."""
    groups: dict[str, list[tuple[Callable[[torch.Tensor], torch.Tensor], Stat]]] = {}
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
        good = _critical_scales(fn)
        fixable = bool(good)
        grad_gain = gradient_change(chi, n)
        ok_here = in_band(grad_gain, GRADIENT_BAND)
        stable = ok_here and fixable
        head = (f"{label} (x{n}) at pre-activation std {math.sqrt(q):.3g}: chi_1 = {chi:.3g} "
                f"(gradient norm x{grad_gain:.3g} over {n} layers), length-map slope {slope:.3g}")
        best = min(good, key=lambda g: abs(math.log(g[0] / q))) if good else None
        fix = (f"target_std = {math.sqrt(best[0]):.3g} gives chi_1 = {best[1]:.3g}, slope {best[2]:.3g}"
               if best else "")
        if stable:
            msg = head + " - stable" + (f" (critical scale: {fix})" if abs(chi - 1) > _CHI_TOL else "")
            if slope > _SLOPE_TOL:
                msg += (f"; the length map's fixed point repels (x{slope:.3g} per layer), so inputs whose scale "
                        "differs from the example's drift with depth")
        elif fixable:
            what = "vanish" if grad_gain < 1 else "explode"
            msg = head + (f" - UNSTABLE at this scale (beyond x{GRADIENT_BAND[0]:g}..x{GRADIENT_BAND[1]:g} over the "
                          f"model): gradients {what}; a scalar fixes it: {fix}")
        else:
            grid = [_at(fn, float(g)) for g in _GRID]
            chis = [v[0] for v in grid if v is not None]
            rng = f"{min(chis):.3g}..{max(chis):.3g}" if chis else "n/a"
            slopes_ = [v[1] for v in grid if v is not None]
            if chis and (min(chis) <= 1 + _CHI_TOL and max(chis) >= 1 - _CHI_TOL):
                # chi_1 reaches 1 somewhere: it is the length map that rules those scales out
                near = [v[1] for v in grid if v is not None and abs(v[0] - 1) <= _CHI_TOL]
                why = (f"chi_1 spans {rng} over scales from 1e-2 to 1e2 std, but where it is near 1 the fixed point "
                       "of the length map repels" + (f" (slope {min(near):.3g} or more)" if near else "")
                       + ": inputs of another scale explode or vanish with depth")
            else:
                why = (f"chi_1 stays in {rng} for every scale from 1e-2 to 1e2 std, never within {_CHI_TOL:g} of 1"
                       + (f", and the fixed point of the length map repels at every scale (slope {min(slopes_):.3g} "
                          "or more): inputs of another scale explode or vanish with depth"
                          if slopes_ and min(slopes_) > _SLOPE_TOL else ""))
            msg = (head + f" - UNSTABLE: no scalar init keeps the signal stable ({why}). Put a normalization "
                   "(LayerNorm) before each such layer, or use an activation with chi_1 -> 1 (relu, gelu, tanh "
                   "at small scale)")
        rows.append({"activation": label, "layers": n, "q": q, "chi_1": chi, "length_slope": slope,
                     "gradient_gain": grad_gain, "fixable_by_scale": fixable,
                     "critical_std": math.sqrt(best[0]) if best else None, "stable": stable, "message": msg})
    return rows
