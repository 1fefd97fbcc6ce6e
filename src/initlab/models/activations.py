"""The activation registry, re-exported where the models use it (see :mod:`initlab.activations`)."""

from ..activations import (
    ACTIVATIONS,
    HEALTHY_GAIN,
    SATURATING,
    activation_fn,
    activation_names,
    canonical_activation,
    make_activation,
)

__all__ = ["ACTIVATIONS", "activation_names", "make_activation", "activation_fn", "SATURATING", "HEALTHY_GAIN",
           "canonical_activation"]

_canonical = canonical_activation  # the name older callers import (use canonical_activation)
