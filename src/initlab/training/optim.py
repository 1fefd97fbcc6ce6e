"""Optimizers with Keras' defaults, and the loss for a model's output."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .._validation import check_choice, check_float

__all__ = ["OPTIMIZERS", "DEFAULT_LR", "make_optimizer", "loss_for"]

OPTIMIZERS = ("adam", "sgd", "rmsprop")
# Keras' default learning rates: Adam 1e-3, SGD 1e-2, RMSprop 1e-3.
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-2, "rmsprop": 1e-3}


def make_optimizer(
    params: Iterable[torch.Tensor], name: str = "adam", learning_rate: float | None = None, momentum: float = 0.0
) -> torch.optim.Optimizer:
    """An optimizer with Keras' defaults.

    adam: betas (0.9, 0.999), eps 1e-7 (Keras; PyTorch's default eps is 1e-8).
    sgd: optional (heavy-ball) ``momentum``. rmsprop: rho 0.9, eps 1e-7, as Keras.
    """
    name = check_choice("optimizer", str(name).lower(), OPTIMIZERS)
    lr = DEFAULT_LR[name] if learning_rate is None else check_float("learning_rate", learning_rate, 0.0, strict_minimum=True)
    momentum = check_float("momentum", momentum, 0.0, 1.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-7)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, momentum=momentum)


def loss_for(n_outputs: int) -> nn.Module:
    """Binary cross-entropy on one sigmoid logit, cross-entropy on several (both from logits)."""
    return nn.BCEWithLogitsLoss() if n_outputs == 1 else nn.CrossEntropyLoss()
