"""Mean-field signal propagation: predict, before training, how an initializer propagates signals.

>>> from initlab.theory import MeanField, critical_sigma_w2
>>> round(critical_sigma_w2("tanh", sigma_b2=0.05), 3)  # chi_1 = 1: the edge of chaos
1.761
>>> MeanField("tanh", sigma_w2=1.5, sigma_b2=0.05).phase  # below the edge: chi_1 = 0.939
'ordered'
>>> MeanField("tanh", sigma_w2=2.5, sigma_b2=0.05).phase  # above it: chi_1 = 1.134
'chaotic'
>>> critical_sigma_w2("relu")
2.0
"""

from .bridge import (
    VarianceCheck,
    check_variance,
    effective_sigma_b2,
    effective_sigma_w2,
    measure_preactivation_variance,
    predicted_preactivation_variance,
)
from .meanfield import Activation, MeanField, critical_sigma_w2, resolve_activation
from .plots import accuracy_heatmap, phase_diagram, trainable_depth_plot, variance_check_plot

__all__ = [
    "MeanField", "critical_sigma_w2", "resolve_activation", "Activation",
    "effective_sigma_w2", "effective_sigma_b2", "predicted_preactivation_variance", "measure_preactivation_variance",
    "check_variance", "VarianceCheck",
    "phase_diagram", "trainable_depth_plot", "accuracy_heatmap", "variance_check_plot",
]
