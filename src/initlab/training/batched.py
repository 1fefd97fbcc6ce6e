"""Train M networks of one architecture at once.

This is the reference (per-model) implementation of the API; results must match M runs of
:class:`Trainer` number for number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..initializers import apply_init
from ..models import MLP
from .trainer import Trainer

__all__ = ["BatchedTrainer"]

Spec = str | Mapping[str, Any]


def _per_model(value: Any, m: int, field: str) -> list[Any]:
    if isinstance(value, (str, Mapping, int)) or value is None:
        return [value] * m
    value = list(value)
    if len(value) != m:
        from .._validation import ValidationError

        raise ValidationError(f"{field} needs one entry per model ({m}), got {len(value)}")
    return value


class BatchedTrainer:
    """Train M MLPs of the same ``sizes`` and ``activation``, each with its own init and seeds.

    Model ``i`` is ``MLP(sizes, activation, output)`` initialized by
    ``apply_init(model, inits[i], bias_inits[i], generator=init_seeds[i])`` and trained by
    ``Trainer(model, ..., seed=data_seeds[i])``. After ``fit``: ``history_[key]`` is an
    array ``(M, epochs_run)``; ``diverged_epoch_`` ``(M,)`` holds the epoch a model's loss
    turned non-finite, or -1. Callbacks get ``on_epoch_end(trainer, epoch, logs)`` with each
    log an array ``(M,)`` and may set ``trainer.stop_training = True``.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str,
        inits: Sequence[Spec],
        init_seeds: Sequence[int] | int = 0,
        bias_inits: Sequence[Spec] | Spec = "zeros",
        data_seeds: Sequence[int] | int = 0,
        optimizer: str = "adam",
        learning_rate: float | None = None,
        momentum: float = 0.0,
        epochs: int = 100,
        batch_size: int = 32,
        output: str = "sigmoid",
        callbacks: Sequence[Any] = (),
        device: str | torch.device = "cpu",
    ) -> None:
        self.sizes = list(sizes)
        self.activation = activation
        self.inits = list(inits)
        self.m = len(self.inits)
        self.init_seeds = _per_model(init_seeds, self.m, "init_seeds")
        self.bias_inits = _per_model(bias_inits, self.m, "bias_inits")
        self.data_seeds = _per_model(data_seeds, self.m, "data_seeds")
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.epochs = epochs
        self.batch_size = batch_size
        self.output = output
        self.callbacks = list(callbacks)
        self.device = device
        self.stop_training = False
        self.models_ = [self._build(i) for i in range(self.m)]

    def _build(self, i: int) -> MLP:
        model = MLP(self.sizes, self.activation, self.output)
        return apply_init(model, self.inits[i], self.bias_inits[i], generator=self.init_seeds[i])

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> BatchedTrainer:
        """Train all M models on the same data, epoch by epoch in lock step."""
        trainers = [
            Trainer(model, self.optimizer, self.learning_rate, self.momentum, self.epochs,
                    self.batch_size, self.data_seeds[i], device=self.device)
            for i, model in enumerate(self.models_)
        ]
        running = [t.iter_epochs(X, y, X_val, y_val) for t in trainers]
        self.stop_training = False
        last: list[dict[str, float]] = [{} for _ in trainers]
        for epoch in range(self.epochs):
            for i, it in enumerate(running):
                if it is not None:
                    last[i] = next(it, None) or last[i]
                    if trainers[i].diverged_epoch_ is not None:
                        running[i] = None
            logs = {k: np.array([lg.get(k, np.nan) for lg in last]) for k in last[0]}
            for cb in self.callbacks:
                if hasattr(cb, "on_epoch_end"):
                    cb.on_epoch_end(self, epoch, logs)
            if self.stop_training:
                break
        self.trainers_ = trainers
        keys = trainers[0].history_.keys()
        width = max(t.epochs_run_ for t in trainers)
        self.history_ = {
            k: np.array([t.history_[k] + [np.nan] * (width - len(t.history_[k])) for t in trainers]) for k in keys
        }
        self.diverged_epoch_ = np.array([-1 if t.diverged_epoch_ is None else t.diverged_epoch_ for t in trainers])
        return self

    def to_models(self) -> list[MLP]:
        """The M trained networks as ordinary ``MLP`` modules."""
        return list(self.models_)

    @torch.no_grad()
    def predict_proba(self, X: Any) -> np.ndarray:
        """``(M, N)`` P(class 1) for sigmoid outputs, ``(M, N, K)`` for softmax."""
        X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        return np.stack([m.predict_proba(X).cpu().numpy() for m in self.models_])
