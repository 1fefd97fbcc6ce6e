"""The activation registry: names -> torch modules and their elementwise functions.

A leaf module (torch only) at the bottom of the package, so that models, initializers and
theory can all resolve activation names without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ._validation import check_choice

__all__ = ["ACTIVATIONS", "activation_names", "make_activation", "activation_fn", "SATURATING"]

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

_ALIASES = {"swish": "silu", "identity": "linear", "none": "linear", "logistic": "sigmoid"}


def activation_names() -> list[str]:
    """Canonical activation names."""
    return list(ACTIVATIONS)


def _canonical(name: str) -> str:
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    return check_choice("activation", key, ACTIVATIONS)


def make_activation(name: str) -> nn.Module:
    """A new ``nn.Module`` for activation ``name`` (aliases: swish, identity, logistic)."""
    return ACTIVATIONS[_canonical(name)]()


def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The elementwise function of activation ``name``, differentiable by autograd."""
    return make_activation(name)
