"""Activations known by behaviour: the gain, resemblance and growth degree of an activation, measured
on its outputs at fixed points (or read from the activation registry for a known name).

Nothing is cached: two functions that share a class and a repr (``Act(torch.tanh)`` and
``Act(torch.relu)``) are measured apart, and no earlier diagnosis can change a later one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..activations import HEALTHY_GAIN
from ..trace import Record
from .slopes import profile

__all__ = ["HEALTHY_GAIN", "resembles", "growth_degree", "activation_gain"]

# Known activations a custom module is compared with: one that matches one of them on a grid is
# given its gain (a class named NewGELUActivation computing gelu's tanh form gets gelu's).
_REFERENCE = {
    "relu": torch.relu, "gelu": nn.functional.gelu, "silu": nn.functional.silu, "tanh": torch.tanh,
    "sigmoid": torch.sigmoid, "hardswish": nn.functional.hardswish, "mish": nn.functional.mish,
    "elu": nn.functional.elu, "softplus": nn.functional.softplus, "hardsigmoid": nn.functional.hardsigmoid,
}
_GRID = torch.linspace(-6.0, 6.0, 241)


def resembles(fn: Callable[[torch.Tensor], torch.Tensor]) -> str | None:
    """The known activation that ``fn`` matches within 0.01 everywhere on [-6, 6] (None: none)."""
    try:
        with torch.no_grad():
            y = fn(_GRID.clone()).float()
        for name, ref in _REFERENCE.items():
            if y.shape == _GRID.shape and float((y - ref(_GRID)).abs().max()) < 1e-2:
                return name
    except Exception:  # measuring is best effort; no match then
        return None
    return None


def growth_degree(fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """``k`` where ``fn(x)`` grows like ``x**k`` for large positive ``x`` (measured at 4, 8, 16;
    nan when ``fn`` is not positive there). ReLU, GELU, SiLU: 1; relu(x)**2: 2."""
    try:
        with torch.no_grad():
            y = fn(torch.tensor([4.0, 8.0, 16.0])).double()
        return float(torch.log2(y[2] / y[1])) if bool((y > 0).all()) else float("nan")
    except Exception:  # measuring is best effort
        return float("nan")


def activation_gain(rec: Record) -> float:
    """The variance-preserving gain for the activation after ``rec``: :data:`HEALTHY_GAIN` for an
    activation the tracer knows by its module class or function (the registry); for any other, that
    of the known activation it matches on a grid; else, for one bounded below only (ReLU-like),
    sqrt(2) when it grows linearly (as He et al., 2015 derive for ReLU) and 0 when it grows like
    x**k with k != 1 (relu(x)**2: no weight scale keeps the signal's scale through it); 1 otherwise
    (LeCun et al., 1998). Every measurement is taken on ``rec.act_fn`` itself, each time."""
    name = rec.activation or "linear"
    if name in HEALTHY_GAIN or name in ("tanh", "sigmoid", "linear", "selu", "hardtanh", "hardsigmoid", "softsign"):
        return HEALTHY_GAIN.get(name, 1.0)
    if rec.act_fn is None:
        return 1.0
    like = resembles(rec.act_fn)
    if like is not None:
        return HEALTHY_GAIN.get(like, 1.0)
    shape = profile(rec.act_fn)
    if shape.low is not None and shape.high is None:
        k = growth_degree(rec.act_fn)
        return math.sqrt(2) if abs(k - 1) < 0.1 else 0.0
    return 1.0
