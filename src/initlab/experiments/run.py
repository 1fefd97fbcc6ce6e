"""``run_experiment``: one spec through the run core, with what a report needs besides numbers.

An :class:`ExperimentResult` is a :class:`~initlab.experiments.record.RunRecord` of a run
trained with a per-step Monitor, plus its Diagnosis objects, data and decision-boundary grid
for the figures; its ``to_dict()`` is the record's, with the report's findings added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..diagnostics import Diagnosis, Monitor
from ..plots.boundary import ProbabilityGrid, probability_grid
from ..runspec import RunSpec
from .execute import execute
from .findings import findings
from .record import RunRecord, short_name

__all__ = ["ExperimentResult", "run_experiment", "from_record"]

EpochCallback = Callable[[int], None]  # epochs done


@dataclass
class ExperimentResult:
    """A finished run with its figures' data. ``init_diagnosis`` is taken on the training data
    before the first step (so its gradients are those of the first step), ``end_diagnosis`` after
    the last."""

    record: RunRecord
    init_diagnosis: Diagnosis
    end_diagnosis: Diagnosis
    init_weight_norms: dict[str, float]  # layer name -> Frobenius norm of its weight at init
    class_names: list[str]
    X_train: np.ndarray  # (N_train, features)
    y_train: np.ndarray  # (N_train,)
    X_val: np.ndarray
    y_val: np.ndarray
    grid: ProbabilityGrid | None = None  # None unless the inputs are 2-D
    state_dict: dict[str, torch.Tensor] | None = None
    monitor: Monitor | None = None  # per-layer statistics recorded during training (no model inside)

    @property
    def spec(self) -> RunSpec:
        return self.record.spec

    @property
    def name(self) -> str:
        return self.record.spec.name

    @property
    def history(self) -> dict[str, list[float]]:
        return {k: list(map(float, v)) for k, v in self.record.history.items()}

    def __getattr__(self, name: str) -> Any:  # train_accuracy, val_loss, chance_accuracy, ... from the record
        if name.startswith("_") or name == "record":
            raise AttributeError(name)
        return getattr(self.record, name)

    def __repr__(self) -> str:
        r = self.record
        return (f"ExperimentResult({short_name(r.name)!r}, run_id={r.run_id!r}, status={r.status!r}, "
                f"val_accuracy={r.val_accuracy:.3g}, verdicts={self.end_diagnosis.codes if self.end_diagnosis else []})")

    def _repr_html_(self) -> str:
        """Notebook display: the record's summary, the findings, the decision boundary and loss curves inline."""
        from .html import result_html

        return result_html(self)

    def to_dict(self) -> dict[str, Any]:
        """The results.json entry: the run record's dict and the report's findings (``summary``)."""
        return self.record.to_dict() | {"summary": findings(self).to_dict()}


def from_record(record: RunRecord) -> ExperimentResult:
    """Wrap a record that was run with ``keep`` (its artifacts hold the model and diagnoses)."""
    art = record.artifacts
    if art is None or art.model is None:
        raise ValueError("the record has no artifacts: run it with execute(..., keep=True)")
    X_tr, y_tr, X_val, y_val = art.split
    model = art.model
    norms = art.init_weight_norms or {}
    return ExperimentResult(
        record=record, init_diagnosis=art.init_diagnosis, end_diagnosis=art.end_diagnosis,
        init_weight_norms=norms, class_names=list(art.data.class_names),
        X_train=X_tr, y_train=y_tr, X_val=X_val, y_val=y_val,
        grid=probability_grid(model, art.data.X) if art.data.n_features == 2 else None,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        monitor=art.monitor,
    )


def run_experiment(spec: RunSpec, on_epoch: EpochCallback | None = None) -> ExperimentResult:
    """Load the data, build and initialize the MLP, measure, train with a Monitor, measure again.

    ``on_epoch(epochs_done)`` is called after every epoch (for progress displays); it cannot
    change the result.
    """
    progress = (lambda specs, done: on_epoch(done)) if on_epoch is not None else None
    (record,) = execute([spec], monitor=True, keep=True, progress=progress)
    return from_record(record)
