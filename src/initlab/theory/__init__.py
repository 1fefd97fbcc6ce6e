"""Mean-field signal propagation: predict, before training, how an initializer propagates signals.

>>> from initlab.theory import MeanField, critical_sigma_w2
>>> MeanField("tanh", sigma_w2=1.5, sigma_b2=0.05).phase
'chaotic'
>>> critical_sigma_w2("relu")
2.0
"""

from .meanfield import Activation, MeanField, critical_sigma_w2, resolve_activation

__all__ = ["MeanField", "critical_sigma_w2", "resolve_activation", "Activation"]
