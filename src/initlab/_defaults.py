"""Keras' optimizer defaults, torch-free: the run spec and ``initlab train --help`` read them
without loading torch; :mod:`initlab.training.optim` implements the optimizers they name."""

from __future__ import annotations

OPTIMIZERS = ("adam", "sgd", "rmsprop")
# Keras' default learning rates: Adam 1e-3, SGD 1e-2, RMSprop 1e-3.
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-2, "rmsprop": 1e-3}
