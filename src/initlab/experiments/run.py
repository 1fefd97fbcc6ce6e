"""``run_experiment``: one spec in, one result out (data, training, measurements at both ends).

The run is a pure function of its :class:`ExperimentSpec` (same spec, same numbers) and its
result is picklable, so a local loop and a process or Ray executor run the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import datasets
from .._rng import make_generator
from ..diagnostics import Diagnosis, Monitor, diagnose
from ..initializers import apply_init
from ..models import MLP
from ..plots.boundary import ProbabilityGrid, probability_grid
from ..training import Trainer
from .findings import findings
from .spec import ExperimentSpec

__all__ = ["ExperimentResult", "run_experiment", "load_data"]

EpochCallback = Callable[[int, dict[str, float]], None]
MONITOR_RECORDINGS = 40  # Monitor recordings per run, spread evenly over its steps


@dataclass
class ExperimentResult:
    """What one run measured. ``init_diagnosis`` is taken on the training data before the first
    step (so its gradients are those of the first step), ``end_diagnosis`` after the last."""

    spec: ExperimentSpec
    history: dict[str, list[float]]  # per epoch: loss, accuracy, val_loss, val_accuracy
    train_accuracy: float  # of the final model on all training rows
    val_accuracy: float  # nan when there is no validation data
    train_loss: float
    val_loss: float
    init_diagnosis: Diagnosis
    end_diagnosis: Diagnosis
    chance_accuracy: float  # share of the most frequent class in the validation (else training) rows
    predicted_classes: int  # how many different classes the final model predicts on all rows
    init_weight_norms: dict[str, float]  # layer name -> Frobenius norm of its weight at init
    class_names: list[str]
    X_train: np.ndarray  # (N_train, features)
    y_train: np.ndarray  # (N_train,)
    X_val: np.ndarray
    y_val: np.ndarray
    grid: ProbabilityGrid | None = None  # None unless the inputs are 2-D
    diverged_epoch: int | None = None  # first epoch with a non-finite loss
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    monitor: Monitor | None = None  # per-layer statistics recorded during training (no model inside)

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        """The results.json entry (names fixed by shared/DESIGN.md; extra fields added)."""
        s = self.spec
        f = findings(self)
        return {
            "name": s.name,
            "dataset": s.dataset,
            "n_samples": int(len(self.X_train) + len(self.X_val)),
            "activation": s.activation,
            "initializer": s.initializer,
            "bias_initializer": s.bias_initializer,
            "hidden": list(s.hidden),
            "optimizer": s.optimizer.lower(),
            "learning_rate": s.lr,
            "momentum": s.momentum,
            "epochs": s.epochs,
            "batch_size": s.batch_size,
            "seed": s.seed,
            "data_seed": s.data_seed,
            "noise": s.noise,
            "validation_split": s.validation_split,
            "n_train": int(len(self.X_train)),
            "n_val": int(len(self.X_val)),
            "train_accuracy": self.train_accuracy,
            "val_accuracy": _finite_or_none(self.val_accuracy),
            "train_loss": _finite_or_none(self.train_loss),
            "val_loss": _finite_or_none(self.val_loss),
            "chance_accuracy": self.chance_accuracy,
            "predicted_classes": self.predicted_classes,
            "diverged_epoch": self.diverged_epoch,
            "history": {k: [_finite_or_none(v) for v in vals] for k, vals in self.history.items()},
            "diagnostics": _diagnostics_dict(self.end_diagnosis),
            "diagnostics_init": _diagnostics_dict(self.init_diagnosis),
            "summary": f.to_dict(),
            "spec": s.model_dump(),
        }


def load_data(spec: ExperimentSpec) -> tuple[datasets.Dataset, tuple[np.ndarray, ...]]:
    """The spec's data set and its Keras-style split ``(X_train, y_train, X_val, y_val)``."""
    data = datasets.load(spec.dataset, n_samples=spec.n_samples, noise=spec.noise, seed=spec.data_seed)
    return data, datasets.validation_split(data.X, data.y, spec.validation_split)


def run_experiment(spec: ExperimentSpec, on_epoch: EpochCallback | None = None) -> ExperimentResult:
    """Load the data, build and initialize the MLP, measure, train, measure again.

    ``on_epoch(epoch, logs)`` is called after every epoch (for progress displays); it cannot
    change the result.
    """
    data, (X_tr, y_tr, X_val, y_val) = load_data(spec)
    n_out = 1 if data.n_classes == 2 else data.n_classes
    model = MLP([data.n_features, *spec.hidden, n_out], spec.activation, "sigmoid" if n_out == 1 else "softmax")
    apply_init(model, spec.init, spec.bias_init, generator=make_generator(spec.seed))
    Xt, yt = torch.as_tensor(X_tr), torch.as_tensor(y_tr)
    # Whether a layer starts at exactly zero (why no gradient flows below it at step 0).
    init_norms = {name: float(m.weight.detach().norm()) for name, m in model.named_children() if hasattr(m, "weight")}
    init_diag = diagnose(model, Xt, yt)

    # About MONITOR_RECORDINGS recordings over the whole run, whatever its length.
    steps = spec.epochs * -(-len(X_tr) // spec.batch_size)
    monitor = Monitor(model, every=max(1, steps // MONITOR_RECORDINGS))
    callbacks = [monitor] + ([_EpochHook(on_epoch)] if on_epoch is not None else [])
    trainer = Trainer(
        model, spec.optimizer.lower(), spec.learning_rate, spec.momentum, spec.epochs, spec.batch_size,
        seed=spec.seed, callbacks=callbacks,
    )
    trainer.fit(X_tr, y_tr, X_val, y_val)
    monitor.close()
    end_diag = diagnose(model, Xt, yt)
    train_loss, train_acc = trainer.evaluate(X_tr, y_tr)
    val_loss, val_acc = trainer.evaluate(X_val, y_val) if len(X_val) else (float("nan"), float("nan"))
    reference = y_val if len(y_val) else y_tr
    chance = float(np.bincount(reference).max() / len(reference))
    with torch.no_grad():
        logits = model(torch.as_tensor(np.concatenate([X_tr, X_val])))
        predicted = (logits > 0).long().squeeze(-1) if n_out == 1 else logits.argmax(-1)
    return ExperimentResult(
        spec=spec,
        history={k: list(v) for k, v in trainer.history_.items()},
        train_accuracy=train_acc,
        val_accuracy=val_acc,
        train_loss=train_loss,
        val_loss=val_loss,
        init_diagnosis=init_diag,
        end_diagnosis=end_diag,
        chance_accuracy=chance,
        predicted_classes=int(torch.unique(predicted).numel()),
        init_weight_norms=init_norms,
        class_names=list(data.class_names),
        X_train=X_tr, y_train=y_tr, X_val=X_val, y_val=y_val,
        grid=probability_grid(model, data.X) if data.n_features == 2 else None,
        diverged_epoch=trainer.diverged_epoch_,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        monitor=monitor,
    )


class _EpochHook:
    def __init__(self, fn: EpochCallback) -> None:
        self.fn = fn

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        self.fn(epoch, dict(logs))


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _diagnostics_dict(diag: Diagnosis) -> dict[str, Any]:
    """Diagnosis.to_dict() plus ``activation_std`` (the DESIGN name of a layer's ``std``)."""
    out = diag.to_dict()
    for layer in out["layers"]:
        layer["activation_std"] = layer["std"]
    out["verdicts"] = [{"code": v["code"], "message": v["message"], "layers": v["layers"], "fix": v["fix"]} for v in out["verdicts"]]
    return out
