"""The single-model trainer: Keras' ``fit`` semantics in plain PyTorch."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from .._validation import ValidationError, check_int
from .optim import loss_for, make_optimizer
from .order import minibatch_order

__all__ = ["Trainer", "Callback", "as_tensors", "accuracy"]


class Callback(Protocol):
    """What a callback may implement (every method optional)."""

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, step: int) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...


def as_tensors(X: Any, y: Any, n_outputs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``X`` as float32 ``(N, features)``; ``y`` as float32 ``(N, 1)`` for one output, else int64 ``(N,)``."""
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y))
    y = y.reshape(-1, 1).float() if n_outputs == 1 else y.reshape(-1).long()
    return X, y


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction correct: threshold 0.5 on one sigmoid output (logit > 0), argmax otherwise."""
    if logits.shape[-1] == 1:
        pred = (logits > 0).float()
        return float((pred == y).float().mean())
    return float((logits.argmax(-1) == y).float().mean())


class Trainer:
    """Train one model as Keras' ``model.fit`` would.

    Minibatches of ``batch_size`` (last one smaller) are drawn in a fresh random order every
    epoch from ``seed``, the order seed (:func:`~initlab.training.order.minibatch_order`, as
    the batched trainer; initialize the weights separately with ``initlab.apply_init``). Per epoch
    ``history_`` records ``loss`` and ``accuracy`` as Keras
    does (averaged over the epoch's minibatches, weighted by their size) and ``val_loss``,
    ``val_accuracy`` on the held-out data after the epoch. A non-finite loss stops training and
    sets ``diverged_epoch_``. Callbacks may set ``trainer.stop_training = True``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: str = "adam",
        learning_rate: float | None = None,  # None: Keras' default for the optimizer
        momentum: float = 0.0,  # SGD/RMSprop momentum
        epochs: int = 100,
        batch_size: int = 32,  # Keras' default
        seed: int = 0,  # minibatch order
        callbacks: Sequence[Any] = (),
        device: str | torch.device = "cpu",
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.epochs = check_int("epochs", epochs, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed = seed
        self.callbacks = list(callbacks)
        self.device = torch.device(device)
        self.stop_training = False

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Trainer:
        """Train on ``(X, y)``; validate on ``(X_val, y_val)`` after every epoch when given."""
        for _ in self.iter_epochs(X, y, X_val, y_val):
            pass
        return self

    def iter_epochs(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Iterator[dict[str, float]]:
        """Train like ``fit``, yielding each epoch's logs as it ends (for lock-step and live views)."""
        model = self.model.to(self.device)
        n_out = _n_outputs(model)
        X, y = (t.to(self.device) for t in as_tensors(X, y, n_out))
        if len(X) == 0:
            raise ValidationError("no training rows")
        has_val = X_val is not None and len(X_val) > 0
        if has_val:
            X_val, y_val = (t.to(self.device) for t in as_tensors(X_val, y_val, n_out))
        self.loss_fn_ = loss_for(n_out)
        self.optimizer_ = make_optimizer(model.parameters(), self.optimizer, self.learning_rate, self.momentum)
        self.history_: dict[str, list[float]] = {"loss": [], "accuracy": []}
        if has_val:
            self.history_.update(val_loss=[], val_accuracy=[])
        self.diverged_epoch_: int | None = None
        self.step_ = 0
        self.epochs_run_ = 0
        self.stop_training = False
        self._call("on_train_begin")
        n = len(X)
        for epoch in range(self.epochs):
            model.train()
            perm = torch.from_numpy(minibatch_order(self.seed, epoch, n)).to(self.device)
            total_loss, total_correct = 0.0, 0.0
            for start in range(0, n, self.batch_size):
                idx = perm[start:start + self.batch_size]
                xb, yb = X[idx], y[idx]
                self.optimizer_.zero_grad(set_to_none=True)
                logits = model(xb)
                loss = self.loss_fn_(logits, yb)
                loss.backward()
                self.optimizer_.step()
                self.step_ += 1
                total_loss += float(loss.detach()) * len(idx)
                total_correct += accuracy(logits.detach(), yb) * len(idx)
                self._call("on_step_end", self.step_)
            logs = {"loss": total_loss / n, "accuracy": total_correct / n}
            if has_val:
                logs["val_loss"], logs["val_accuracy"] = self.evaluate(X_val, y_val)
            for key, value in logs.items():
                self.history_[key].append(value)
            self.epochs_run_ = epoch + 1
            if not math.isfinite(logs["loss"]):
                self.diverged_epoch_ = epoch
                yield logs
                return
            self._call("on_epoch_end", epoch, logs)
            yield logs
            if self.stop_training:
                return

    @torch.no_grad()
    def evaluate(self, X: Any, y: Any) -> tuple[float, float]:
        """``(loss, accuracy)`` of the model on ``(X, y)`` in one pass."""
        model = self.model
        n_out = _n_outputs(model)
        X, y = (t.to(self.device) for t in as_tensors(X, y, n_out))
        model.eval()
        logits = model(X)
        return float(loss_for(n_out)(logits, y)), accuracy(logits, y)


def _n_outputs(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValidationError("the model has no Linear layer to read the number of outputs from")
    return last[-1].out_features
