"""Run lifecycle: slots per client, training in a worker thread, throttled progress events.

A run is a thread that calls ``emit(event)`` with JSON-ready dicts: ``start`` (the data),
``progress`` frames (at most ``LIMITS.events_per_second``, and at least one per epoch's end
when epochs are slower than that, plus one mid-epoch when a single epoch is slow), then
``done`` (summary and results.json) or ``error``. Setting ``cancel`` stops it within one
minibatch (single runs) or one epoch (comparisons).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from ..plots.style import init_color
from ..training import BatchedTrainer, Trainer
from .lab import (
    LabData, boundary, build_model, clean, diagnostics, experiment_record, predict_grid, results_json, sizes,
)
from .limits import LIMITS
from .specs import CompareSpec, TrainSpec

__all__ = ["RunSlots", "SlotsFull", "single_run", "compare_run", "preview", "Cancelled"]

Emit = Callable[[dict[str, Any]], None]
_ids = itertools.count(1)


class SlotsFull(Exception):
    """No slot left: ``status`` is the HTTP status to answer (429 per client, 503 server-wide)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class RunSlots:
    """Counts running runs per client host; ``acquire`` refuses beyond the limits."""

    def __init__(self, per_client: int = LIMITS.max_runs_per_client, total: int = LIMITS.max_runs_total) -> None:
        self.per_client, self.total = per_client, total
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()

    def acquire(self, client: str) -> int:
        with self._lock:
            if self._running[client] >= self.per_client:
                raise SlotsFull(429, f"too many runs: at most {self.per_client} at once per client; stop one first")
            if sum(self._running.values()) >= self.total:
                raise SlotsFull(503, f"the server is busy: {self.total} runs at once; try again shortly")
            self._running[client] += 1
            return next(_ids)

    def release(self, client: str) -> None:
        with self._lock:
            self._running[client] -= 1
            if self._running[client] <= 0:
                del self._running[client]

    def active(self, client: str | None = None) -> int:
        with self._lock:
            return sum(self._running.values()) if client is None else self._running[client]


class Cancelled(Exception):
    """Raised inside the training loop when the client went away."""


class _Throttle:
    """True at most ``rate`` times a second."""

    def __init__(self, rate: float = LIMITS.events_per_second) -> None:
        self.period, self.last = 1.0 / rate, -1e9

    def due(self, factor: float = 1.0) -> bool:
        return time.monotonic() - self.last >= self.period * factor

    def mark(self) -> None:
        self.last = time.monotonic()


class _Pacer:
    """Stretches a run that would end in under ``seconds`` to about ``seconds``.

    A small network trains 150 epochs in a fraction of a second: unpaced, the browser would show
    the first and last frame only. Paced, every epoch gets its share of ``seconds`` and the
    throttled events arrive at ``LIMITS.events_per_second``. Long runs are never slowed.
    """

    def __init__(self, epochs: int, seconds: float, cancel: threading.Event) -> None:
        self.epochs, self.seconds, self.cancel = max(1, epochs), seconds, cancel
        self.start = time.monotonic()

    def wait(self, epochs_done: int) -> None:
        due = self.start + self.seconds * epochs_done / self.epochs
        while not self.cancel.is_set() and (left := due - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))


def _history_since(history: dict[str, list[float]], start: int) -> dict[str, list[float]]:
    return {k: list(v[start:]) for k, v in history.items()}


def single_run(spec: TrainSpec, data: LabData, emit: Emit, cancel: threading.Event, run_id: int = 0,
               pace: float = 0.0) -> None:
    """Train one network with ``Trainer.iter_epochs``, streaming frames; ends with ``done``.

    ``pace``: a run shorter than this many seconds is stretched to it (see ``_Pacer``).
    """
    model = build_model(spec, data)
    throttle, sent = _Throttle(), [0]

    def frame(epoch: int, trainer: Trainer | None, partial: bool = False) -> dict[str, Any]:
        history = trainer.history_ if trainer is not None and hasattr(trainer, "history_") else {}
        event = {
            "type": "progress", "epoch": epoch, "epochs": spec.epochs, "partial": partial,
            "history_from": sent[0], "history": _history_since(history, sent[0]),
            "boundary": boundary(predict_grid(model, data)), **diagnostics(model, data),
        }
        if not partial:
            sent[0] = len(history.get("loss", []))
        throttle.mark()
        return event

    class _Watch:
        """Stops within a minibatch on cancel; sends a mid-epoch frame when one epoch is slow."""

        def on_step_end(self, trainer: Trainer, step: int) -> None:
            if cancel.is_set():
                raise Cancelled
            if throttle.due(2.0):
                emit(clean(frame(trainer.epochs_run_, trainer, partial=True)))

    trainer = Trainer(model, spec.optimizer, spec.learning_rate, spec.momentum, spec.epochs, spec.batch_size,
                      seed=spec.seed, callbacks=[_Watch()])
    emit(clean({"type": "start", "mode": "single", "run_id": run_id, "spec": spec.model_dump(exclude={"csv"}),
                "data": data.points(), "color": init_color(spec.weight_init.name)}))
    emit(clean(frame(0, None)))
    pacer = _Pacer(spec.epochs, pace, cancel)
    try:
        for logs in trainer.iter_epochs(data.X, data.y, data.X_val, data.y_val):
            pacer.wait(trainer.epochs_run_)
            done = trainer.epochs_run_ == spec.epochs or trainer.diverged_epoch_ is not None
            if throttle.due() or done:
                emit(clean(frame(trainer.epochs_run_, trainer)))
    except Cancelled:
        return
    if cancel.is_set():
        return
    if throttle.last < 0 or sent[0] < len(trainer.history_["loss"]):  # stopped early: send the tail
        emit(clean(frame(trainer.epochs_run_, trainer)))
    diag = diagnostics(model, data)
    record = experiment_record(spec, data, spec.weight_init.to_spec(), trainer.history_, diag, trainer.diverged_epoch_)
    emit(clean({"type": "done", "run_id": run_id, "summary": _summary(record), "results": results_json([record])}))


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("initializer", "color", "train_accuracy", "val_accuracy", "train_loss", "val_loss", "epochs_run",
            "diverged_epoch")
    out = {k: record[k] for k in keys}
    out["verdicts"] = [v["code"] for v in record["diagnostics"]["verdicts"]]
    return out


def compare_run(spec: CompareSpec, data: LabData, emit: Emit, cancel: threading.Event, run_id: int = 0,
                pace: float = 0.0) -> None:
    """Train ``spec.inits`` side by side with :class:`BatchedTrainer` on the same data and split
    (``pace`` as in :func:`single_run`)."""
    inits = [i.to_spec() for i in spec.inits]
    history: dict[str, list[list[float]]] = {}  # key -> per epoch, (M,) values
    throttle, sent = _Throttle(), [0]

    def frame(trainer: BatchedTrainer, epoch: int) -> dict[str, Any]:
        proba = trainer.predict_proba(data.grid)  # (M, n*n) or (M, n*n, K)
        models = trainer.to_models()
        event = {
            "type": "progress", "epoch": epoch, "epochs": spec.epochs, "history_from": sent[0],
            # key -> (M, new epochs): one curve per initializer
            "history": {k: np.array(v[sent[0]:]).T.reshape(len(inits), -1) for k, v in history.items()},
            "runs": [
                {"boundary": boundary(proba[i]), **diagnostics(models[i], data)} for i in range(len(inits))
            ],
        }
        sent[0] = len(history.get("loss", []))
        throttle.mark()
        return event

    class _Stream:
        def on_epoch_end(self, trainer: BatchedTrainer, epoch: int, logs: dict[str, np.ndarray]) -> None:
            for key, values in logs.items():
                history.setdefault(key, []).append(np.asarray(values, dtype=float).tolist())
            pacer.wait(epoch + 1)
            if cancel.is_set():
                trainer.stop_training = True
            elif throttle.due() or epoch + 1 == spec.epochs:
                emit(clean(frame(trainer, epoch + 1)))

    trainer = BatchedTrainer(
        sizes(spec, data), spec.activation, inits, init_seeds=spec.seed, bias_inits=spec.bias_init.to_spec(),
        data_seeds=spec.seed, optimizer=spec.optimizer, learning_rate=spec.learning_rate, momentum=spec.momentum,
        epochs=spec.epochs, batch_size=spec.batch_size, output=data.sizes_out[1], callbacks=[_Stream()],
    )
    emit(clean({"type": "start", "mode": "compare", "run_id": run_id, "spec": spec.model_dump(exclude={"csv"}),
                "data": data.points(), "colors": [init_color(i["name"]) for i in inits]}))
    emit(clean(frame(trainer, 0)))
    pacer = _Pacer(spec.epochs, pace, cancel)
    trainer.fit(data.X, data.y, data.X_val, data.y_val)
    if cancel.is_set():
        return
    if sent[0] < len(history.get("loss", [])):
        emit(clean(frame(trainer, len(history["loss"]))))
    records = []
    for i, (init, model) in enumerate(zip(inits, trainer.to_models())):
        diverged = int(trainer.diverged_epoch_[i])
        width = trainer.history_["loss"].shape[1] if diverged < 0 else diverged + 1  # drop the NaN padding
        hist = {k: v[i, :width].tolist() for k, v in trainer.history_.items()}
        records.append(experiment_record(spec, data, init, hist, diagnostics(model, data), None if diverged < 0 else diverged))
    emit(clean({"type": "done", "run_id": run_id, "summaries": [_summary(r) for r in records],
                "results": results_json(records)}))


def preview(spec: TrainSpec, data: LabData) -> dict[str, Any]:
    """The untrained network of ``spec``: boundary and diagnosis at initialization."""
    model = build_model(spec, data)
    return clean({"data": data.points(), "color": init_color(spec.weight_init.name),
                  "boundary": boundary(predict_grid(model, data)), **diagnostics(model, data)})
