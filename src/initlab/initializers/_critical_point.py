"""The order-chaos boundary of mean-field theory: the length fixed point q*, chi_1, critical sigma_w2.

The part of mean-field signal propagation the ``critical`` initializer needs, kept at the
initializers' layer so that they do not import ``initlab.theory`` (which builds on them and
re-exports these functions; see ``initlab.theory.meanfield`` for the setting and the papers).
Activations resolve through ``initlab.activations``, a leaf module (torch only).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from .._validation import ValidationError, check_float
from . import _gauss

__all__ = ["Activation", "resolve_activation", "length_fixed_point", "chi_1", "critical_sigma_w2"]

Activation = str | Callable[[torch.Tensor], torch.Tensor]

_KINKED = ("elu", "selu")


def variance_arg(field: str, value: Any) -> float:
    """``value`` as a float variance (>= 0); a one-line ValidationError naming ``field`` otherwise."""
    number = check_float(field, value)
    if number < 0:
        raise ValidationError(f"{field} is a variance and must be >= 0, got {number!r}")
    return number


@lru_cache(maxsize=64)
def _named_kernel(name: str) -> _gauss.Kernel:
    from ..activations import canonical_activation, make_activation

    key = canonical_activation(name)  # raises "unknown activation ...; did you mean ...?"
    if key == "relu":
        return _gauss.ClosedFormLeakyReLU(0.0, "relu")
    if key == "leaky_relu":
        return _gauss.ClosedFormLeakyReLU(cast(nn.LeakyReLU, make_activation(key)).negative_slope, "leaky_relu")
    if key == "linear":
        return _gauss.ClosedFormLinear()
    module = make_activation(key)
    return (_gauss.SplitKernel if key in _KINKED else _gauss.HermiteKernel)(module, key)


def resolve_activation(activation: Activation | _gauss.Kernel) -> _gauss.Kernel:
    """The Gaussian-expectation kernel of a registry name or a torch-differentiable callable.

    Raises ValidationError for an unknown name (with a did-you-mean) or a callable that is
    not elementwise, not finite or not differentiable by autograd.
    """
    if isinstance(activation, _gauss.Kernel):
        return activation
    if isinstance(activation, str):
        return _named_kernel(activation.strip().lower())
    if not callable(activation):
        raise ValidationError(
            f"activation must be a name (see initlab.models.activation_names()) or a torch callable, got {activation!r}"
        )
    name = getattr(activation, "__name__", type(activation).__name__)
    _gauss.check_differentiable(activation, repr(name))
    return _gauss.SplitKernel(activation, name)


def _length_map(kernel: _gauss.Kernel, sigma_w2: float, sigma_b2: float, q: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return sigma_w2 * kernel.e_phi2(np.asarray(q, dtype=float)) + sigma_b2


def length_fixed_point(kernel: _gauss.Kernel, sigma_w2: float, sigma_b2: float) -> float:
    """q* of q -> sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2 reached from a generic length (0, finite or inf).

    Found by scanning q on a log grid for the first sign change of length_map(q) - q from
    + to -, then Brent's method. ReLU at sigma_w2 = 2, sigma_b2 = 0 keeps every length;
    it is reported as q* = 1 (the maps are scale-free there).
    """
    if isinstance(kernel, (_gauss.ClosedFormLeakyReLU, _gauss.ClosedFormLinear)):
        gain = sigma_w2 * kernel.e_dphi2(1.0)  # the length map is gain * q + sigma_b2
        if gain < 1.0:
            return sigma_b2 / (1.0 - gain)
        if gain == 1.0 and sigma_b2 == 0.0:
            return 1.0
        return math.inf
    grid = np.concatenate([[0.0], np.logspace(-10, 8, 37)])
    excess = _length_map(kernel, sigma_w2, sigma_b2, grid) - grid
    if excess[0] <= 0.0 and excess[1] <= 0.0:
        return 0.0  # q = 0 is a stable fixed point (sigma_b2 = 0, phi(0) = 0, ordered)
    down = np.nonzero((excess[:-1] > 0) & (excess[1:] <= 0))[0]
    if len(down) == 0:
        return math.inf
    i = int(down[0])
    f = lambda q: float(np.reshape(_length_map(kernel, sigma_w2, sigma_b2, q), -1)[0]) - q  # noqa: E731
    from scipy import optimize  # lazy: scipy takes half a second to import

    return float(optimize.brentq(f, grid[i], grid[i + 1], xtol=1e-15, rtol=1e-14, maxiter=200))


Q_MIN, Q_MAX = 1e-10, 1e8  # q* = 0 is evaluated at Q_MIN, q* = inf at Q_MAX


def chi_1(kernel: _gauss.Kernel, sigma_w2: float, q_star: float) -> float:
    """sigma_w2 E[phi'(sqrt(q*) z)^2]: mean squared singular value of the layer Jacobian.

    chi_1 < 1 ordered (gradients vanish), > 1 chaotic (they explode), = 1 critical.
    Schoenholz et al. 2017, eq. 7; Poole et al. 2016.
    """
    q = q_star if q_star == 0.0 else min(max(q_star, Q_MIN), Q_MAX)  # E[phi'(0)^2] exactly at q* = 0
    return float(sigma_w2 * kernel.e_dphi2(q))


def critical_sigma_w2(activation: Activation | _gauss.Kernel, sigma_b2: float = 0.0) -> float:
    """The sigma_w2 where chi_1 = 1 (the order-chaos boundary) for ``activation`` and ``sigma_b2``.

    ReLU: 2, leaky ReLU: 2 / (1 + a^2), linear: 1 (any sigma_b2); tanh with sigma_b2 = 0: 1.
    Otherwise Brent's method on chi_1(sigma_w2) - 1. Schoenholz et al. 2017, Fig. 1.
    """
    sigma_b2 = variance_arg("sigma_b2", sigma_b2)
    kernel = resolve_activation(activation)
    if isinstance(kernel, (_gauss.ClosedFormLeakyReLU, _gauss.ClosedFormLinear)):
        return 1.0 / kernel.e_dphi2(1.0)
    return _critical(kernel, sigma_b2)


@lru_cache(maxsize=256)  # named kernels are singletons, so this caches per (activation, sigma_b2)
def _critical(kernel: _gauss.Kernel, sigma_b2: float) -> float:
    def f(w: float) -> float:
        return chi_1(kernel, w, length_fixed_point(kernel, w, sigma_b2)) - 1.0

    lo, hi = 0.5, 2.0
    while f(lo) > 0 and lo > 1e-6:
        lo /= 4
    while f(hi) < 0 and hi < 1e5:
        hi *= 4
    if not (f(lo) <= 0 <= f(hi)):
        raise ValidationError(
            f"activation {kernel.name!r} has no critical sigma_w2 (chi_1 = 1) at sigma_b2={sigma_b2:g}"
        )
    from scipy import optimize

    return float(optimize.brentq(f, lo, hi, xtol=1e-13, rtol=1e-13, maxiter=200))
