"""The activation registry, re-exported where the models use it (see :mod:`initlab.activations`)."""

from ..activations import ACTIVATIONS, SATURATING, _canonical, activation_fn, activation_names, make_activation

__all__ = ["ACTIVATIONS", "activation_names", "make_activation", "activation_fn", "SATURATING", "_canonical"]
