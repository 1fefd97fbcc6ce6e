"""The ``critical`` initializer: weights on the order-chaos boundary (chi_1 = 1)."""

from __future__ import annotations

from .schemes import variance_scaling

__all__ = ["critical"]


def critical(tensor, activation: str = "tanh", sigma_b2: float = 0.0, *, generator=None, fans=None, batch_dims=0):
    """Critical (edge of chaos): N(0, s*/fan_in), s* the sigma_w2 with chi_1 = 1 for the activation and sigma_b2.

    s* = 1 for tanh with sigma_b2 = 0, about 1.76 for tanh with sigma_b2 = 0.05, 2 for ReLU (He).
    Pair it with biases N(0, sigma_b2): ``apply_init(model, {"name": "critical", "activation":
    "tanh", "sigma_b2": 0.05}, bias={"name": "normal", "std": 0.05 ** 0.5})``.
    Reference: Schoenholz et al., 2017, "Deep Information Propagation"; Poole et al., 2016.
    """
    from ..theory import critical_sigma_w2  # lazy: theory imports the initializers

    scale = critical_sigma_w2(activation, sigma_b2)
    return variance_scaling(tensor, scale, "fan_in", "normal", generator=generator, fans=fans, batch_dims=batch_dims)
