"""Networks and activations."""

from .activations import ACTIVATIONS, SATURATING, activation_fn, activation_names, make_activation
from .mlp import MLP, OUTPUTS

__all__ = ["MLP", "OUTPUTS", "ACTIVATIONS", "SATURATING", "activation_fn", "activation_names", "make_activation"]
