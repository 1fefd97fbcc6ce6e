"""``RunRecord``: what one run measured, in one shape everywhere.

``RunRecord.to_dict()`` is the results.json entry of ``train`` and ``reproduce``, the sweep
store's row (lists and dicts become its JSON columns), the lab's download and the lab's final
server event. :func:`clean` (:func:`initlab._json.json_safe`) is the one NaN -> null cleaner and
:func:`summarize` the one per-layer summary of a :class:`~initlab.diagnostics.Diagnosis`.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .. import initializers
from .._json import json_safe as clean
from .._version import __version__
from ..runspec import RunSpec

__all__ = ["RunRecord", "RunArtifacts", "clean", "summarize"]


def summarize(diag: Any) -> dict[str, Any]:
    """The JSON summary of a Diagnosis a record keeps: loss, verdicts, every LayerStats number per
    layer (``activation_std`` is the DESIGN name of ``std``)."""
    layers = [{**vars(s), "activation_std": s.std} for s in diag.layers]  # a shallow copy: scalars only
    return {
        "loss": diag.loss,
        "codes": list(diag.codes),
        "verdicts": [v.to_dict() for v in diag.verdicts],
        "layers": layers,
    }


def _history_array(values: Any) -> np.ndarray:
    """Per-epoch values at float32 precision, what the trainers compute in (orjson writes them
    with the shortest decimals and NaN as null: compact in the store)."""
    return np.asarray(values, dtype=np.float32)


def _history(values: Any) -> list[float | None]:
    """:func:`_history_array` as a list of floats (shortest decimals), None where not finite."""
    out: list[float | None] = orjson.loads(orjson.dumps(_history_array(values), option=orjson.OPT_SERIALIZE_NUMPY))
    return out


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def short_name(name: str, size: int = 40) -> str:
    """``name`` cut to ``size`` characters for a one-line repr (a spec's name may have 200)."""
    return name if len(name) <= size else name[: size - 3] + "..."


@functools.lru_cache(maxsize=4096)
def _cached_label(key: str) -> str:
    return str(initializers.get(json.loads(key)))


def _label(init: Any) -> str:
    """An initializer as a short string, ``he_normal`` or ``normal(std=0.5)`` (cached: sweeps ask often)."""
    return _cached_label(json.dumps(init) if isinstance(init, str) else json.dumps(init, sort_keys=True))


@dataclass
class RunArtifacts:
    """What a local run can hand back besides numbers (never stored, never sent to Ray)."""

    model: Any = None  # the trained torch module
    monitor: Any = None  # initlab.Monitor, when one was asked for
    init_diagnosis: Any = None  # Diagnosis objects (the record keeps their summaries)
    end_diagnosis: Any = None
    data: Any = None  # initlab.datasets.Dataset
    split: tuple[np.ndarray, ...] = ()  # X_train, y_train, X_val, y_val
    init_weight_norms: dict[str, float] = field(default_factory=dict)  # layer -> norm of its weight at init


@dataclass
class RunRecord:
    """One finished run: its spec, which trainer ran it, its history and final measurements."""

    spec: RunSpec
    trainer: str  # "batched" or "single"
    device: str
    history: dict[str, np.ndarray]  # per epoch: loss, accuracy (minibatch averages), val_loss, val_accuracy
    diverged_epoch: int | None  # first epoch whose loss was not finite
    train_loss: float  # of the final model on all training rows
    train_accuracy: float
    val_loss: float  # nan without validation rows
    val_accuracy: float
    n_train: int
    n_val: int
    chance_accuracy: float  # share of the most frequent class in the validation (else training) rows
    predicted_classes: int  # distinct classes the final model predicts on all rows
    diagnostics_init: dict[str, Any] | None = None  # summarize(diagnose(...)) before the first step
    diagnostics: dict[str, Any] | None = None  # ... after the last
    wall_time: float = 0.0  # seconds of training (a batch's time divided by its runs)
    initlab_version: str = __version__
    artifacts: RunArtifacts | None = field(default=None, repr=False, compare=False)

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def epochs_run(self) -> int:
        return len(self.history.get("loss", ()))

    @property
    def status(self) -> str:
        return "diverged" if self.diverged_epoch is not None else "finished"

    def best(self) -> tuple[float | None, float | None, int | None]:
        """Best validation accuracy, lowest validation loss and the (first) epoch of the best accuracy."""
        acc = np.asarray(self.history.get("val_accuracy", ()), dtype=float)
        scores = np.where(np.isfinite(acc), acc, -np.inf)
        if scores.size == 0 or scores.max() == -np.inf:
            return None, None, None
        epoch = int(scores.argmax())
        loss = np.asarray(self.history.get("val_loss", ()), dtype=float)
        loss = loss[np.isfinite(loss)]
        return float(acc[epoch]), (float(loss.min()) if loss.size else None), epoch

    def to_dict(self, arrays: bool = False) -> dict[str, Any]:
        """The record as JSON-ready data: results.json entry, store row, lab download, final event.

        ``arrays=True`` (the store's writer) leaves histories as float32 arrays and diagnostics
        uncleaned, for orjson to write directly (the same values, without a round trip through
        Python lists).
        """
        s = self.spec
        history = _history_array if arrays else _history
        diagnostics: Callable[[Any], Any] = (lambda d: d) if arrays else clean
        best_acc, best_loss, best_epoch = self.best()
        spec = s.to_dict()
        init, bias = _label(s.init), _label(s.bias_init)
        return {
            "run_id": s.run_id, "name": s.name,
            "dataset": s.dataset, "n_samples": self.n_train + self.n_val, "noise": s.noise, "data_seed": s.data_seed,
            "validation_split": s.validation_split, "activation": s.activation, "hidden": spec["hidden"],
            "depth": s.depth, "width": s.width,
            "init": init, "initializer": init, "bias_init": bias, "bias_initializer": bias,
            "optimizer": s.optimizer, "learning_rate": s.learning_rate, "momentum": s.momentum,
            "epochs": s.epochs, "batch_size": s.batch_size,
            "init_seed": s.init_seed, "order_seed": s.order_seed, "seed": s.seed,
            "trainer": self.trainer, "device": self.device, "status": self.status,
            "diverged_epoch": self.diverged_epoch, "epochs_run": self.epochs_run,
            "n_train": self.n_train, "n_val": self.n_val,
            "train_loss": _finite(self.train_loss), "train_accuracy": _finite(self.train_accuracy),
            "val_loss": _finite(self.val_loss), "val_accuracy": _finite(self.val_accuracy),
            "best_val_accuracy": best_acc, "best_val_loss": best_loss, "best_epoch": best_epoch,
            "chance_accuracy": float(self.chance_accuracy), "predicted_classes": int(self.predicted_classes),
            "history": {k: history(v) for k, v in self.history.items()},
            "diagnostics": diagnostics(self.diagnostics), "diagnostics_init": diagnostics(self.diagnostics_init),
            "spec": spec,
            "wall_time": float(self.wall_time), "initlab_version": self.initlab_version,
        }

    def __repr__(self) -> str:
        return (f"RunRecord({short_name(self.name)!r}, run_id={self.run_id!r}, status={self.status!r}, "
                f"epochs={self.epochs_run}, val_accuracy={self.val_accuracy:.3g})")

    def _repr_html_(self) -> str:
        """Notebook display: setup, results, verdicts at init and at the end, the loss curves inline."""
        from .html import record_html

        return record_html(self)

    def __getstate__(self) -> dict[str, Any]:  # artifacts hold modules and closures: never pickled
        state = dict(self.__dict__)
        state["artifacts"] = None
        return state
