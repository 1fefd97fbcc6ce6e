"""Mean-field signal propagation: predict, before training, how an initializer propagates signals.

>>> from initlab.theory import MeanField, critical_sigma_w2
>>> MeanField("tanh", sigma_w2=1.5, sigma_b2=0.05).phase
'chaotic'
>>> critical_sigma_w2("relu")
2.0
"""

from .bridge import (
    VarianceCheck, check_variance, effective_sigma_b2, effective_sigma_w2, measure_preactivation_variance,
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
