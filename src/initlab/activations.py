"""The activation registry: names -> torch modules and their elementwise functions.

A leaf module (torch only) at the bottom of the package, so that models, initializers and
theory can all resolve activation names without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ._validation import check_choice

__all__ = ["ACTIVATIONS", "activation_names", "make_activation", "activation_fn", "SATURATING", "HEALTHY_GAIN",
           "canonical_activation"]

# name -> module factory. "linear" is the identity, as in Keras.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "linear": nn.Identity,
}

# Activations with two horizontal asymptotes: units there pass back almost no gradient.
SATURATING = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}

# The one gain table. The weight std a healthy (variance-preserving) init gives before each
# activation is gain / sqrt(fan_in): gain sqrt(2) for the ReLU family (He et al., 2015), 1 otherwise
# (LeCun et al., 1998; equal to Glorot & Bengio, 2010 when fan_in == fan_out); an activation
# missing here has gain 1 unless diagnose measures it ReLU-like. For gelu, silu, mish, ... sqrt(2)
# is the gain of their large-input (ReLU) limit: 1/sqrt(E[phi(z)^2]) at z ~ N(0, 1) is 1.534 for
# gelu and 1.677 for silu, but their length maps repel at that point (a deep stack drifts away
# from unit scale either way), so the ReLU family's He gain is kept as the reference.
# ``initializers.calculate_gain`` is torch's own recommendation table (tanh 5/3, selu 3/4, no
# gelu), kept for API compatibility with ``torch.nn.init.calculate_gain``; it is not this table.
HEALTHY_GAIN: dict[str, float] = {
    name: math.sqrt(2) for name in ("relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "mish", "celu", "softplus",
                                    "hardswish", "prelu", "rrelu")}

_ALIASES = {"swish": "silu", "identity": "linear", "none": "linear", "logistic": "sigmoid"}


def activation_names() -> list[str]:
    """Canonical activation names."""
    return list(ACTIVATIONS)


def canonical_activation(name: str) -> str:
    """The canonical name of activation ``name`` (aliases resolved); one-line error for an unknown one."""
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    return check_choice("activation", key, ACTIVATIONS)


_canonical = canonical_activation  # the name older callers use


def make_activation(name: str) -> nn.Module:
    """A new ``nn.Module`` for activation ``name`` (aliases: swish, identity, logistic)."""
    return ACTIVATIONS[canonical_activation(name)]()


def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The elementwise function of activation ``name``, differentiable by autograd."""
    return make_activation(name)
