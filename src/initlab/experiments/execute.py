"""THE run core: run specs in, run records out, on any executor.

:func:`execute` groups specs into :class:`Batch` values and runs each with :func:`run_batch`, a
pure function of its batch (seeds inside, no global state), so the local loop, the Ray
executor and the lab run the same code. A batch of compatible runs (same data, architecture
and training settings; initializers and seeds may differ) trains as one stack in the
:class:`~initlab.training.BatchedTrainer`; a run that asks for a per-step
:class:`~initlab.diagnostics.Monitor` trains alone in the single-model
:class:`~initlab.training.Trainer`. Both trainers share the data loader, the minibatch order
and the optimizers' arithmetic, so the choice changes the numbers by float rounding only
(in the ordered phase; in the chaotic phase rounding differences grow, as they do between
two runs of one trainer), and each record says which trainer ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
import torch

from .. import datasets
from .._rng import make_generator
from .._validation import ValidationError, check_choice, check_int
from ..diagnostics import Monitor, diagnose
from ..diagnostics.stacked import diagnose_stack
from ..initializers import apply_init
from ..models import MLP
from ..models.stacked import StackedMLP
from ..runspec import RunSpec
from ..training import BatchedTrainer, Trainer
from .record import RunArtifacts, RunRecord, summarize

__all__ = [
    "Batch", "Executor", "LocalExecutor", "execute", "initialized", "plan", "run_batch", "build_stack", "load_split",
    "resolve_device", "diagnose_trainer",
    "MAX_BATCH", "DIAGNOSE_ROWS", "MONITOR_RECORDINGS",
]

MAX_BATCH = 1000  # runs per batch: more is faster, less loses less to a crash (one batch at most)
DIAGNOSE_ROWS = 256  # training rows the diagnostics look at (the first ones), for either trainer
MONITOR_RECORDINGS = 40  # Monitor recordings per run, spread evenly over its steps

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # X_train, y_train, X_val, y_val
Data = datasets.Dataset | Split  # what replaces a spec's data set
Progress = Callable[[Sequence[RunSpec], int], None]  # (the batch's specs, epochs done)


@dataclass(frozen=True)
class Batch:
    """Runs trained together: one stack of compatible runs, or one run with a Monitor."""

    specs: tuple[RunSpec, ...]
    device: str = "cpu"
    diagnostics: bool = True  # diagnose every run at init and at the end
    monitor: bool = False  # the single-model trainer with a per-step Monitor (one spec)
    single: bool = False  # the single-model trainer (one spec), with or without a Monitor

    @property
    def batch_id(self) -> str:
        return self.specs[0].run_id + f"+{len(self.specs) - 1}"

    @property
    def trainer(self) -> str:
        return "single" if self.monitor or self.single else "batched"


class Executor(Protocol):
    """Runs batches; yields ``(batch, records)`` as each finishes (in any order)."""

    def map(self, fn: Callable[[Batch], list[RunRecord]], batches: Sequence[Batch]
            ) -> Iterator[tuple[Batch, list[RunRecord]]]: ...


class LocalExecutor:
    """Batches one after another in this process, on torch's threads.

    For :func:`run_batch` the batches are pipelined: a batch's final diagnoses and records are
    made in a second thread while the next batch trains (:func:`run_batch_phases`); records are
    the same, and come in the same order.
    """

    def map(self, fn: Callable[[Batch], list[RunRecord]], batches: Sequence[Batch]
            ) -> Iterator[tuple[Batch, list[RunRecord]]]:
        if fn is not run_batch:
            for batch in batches:
                yield batch, fn(batch)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="initlab-finish") as pool:
            pending: tuple[Batch, Future[list[RunRecord]]] | None = None
            for batch in batches:
                trained, finish = run_batch_phases(batch)
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = (batch, pool.submit(finish, trained))
            if pending is not None:
                yield pending[0], pending[1].result()

    def __repr__(self) -> str:
        return "LocalExecutor()"


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` where a GPU exists, else ``cpu``; ``cuda`` without a GPU is an error."""
    device = check_choice("device", str(device).lower(), ("auto", "cpu", "cuda"))
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValidationError("device 'cuda' requested but torch sees no GPU (use --device cpu or auto)")
    return device


def load_split(spec: RunSpec) -> tuple[datasets.Dataset, Split]:
    """The spec's data set and its Keras-style split (the last ``validation_split`` held out)."""
    data = datasets.load(spec.dataset, n_samples=spec.n_samples, noise=spec.noise, seed=spec.data_seed)
    return data, datasets.validation_split(data.X, data.y, spec.validation_split)


def plan(specs: Iterable[RunSpec], device: str = "cpu", diagnostics: bool = True, monitor: bool = False,
         max_batch: int = MAX_BATCH, single: bool = False) -> list[Batch]:
    """Group specs into batches: equal :meth:`RunSpec.batch_key`, at most ``max_batch`` each
    (one spec per batch with ``monitor`` or ``single``), in the order of their first spec."""
    max_batch = check_int("max_batch", max_batch, 1)
    if monitor or single:
        return [Batch((spec,), device, diagnostics, monitor, single=True) for spec in specs]
    groups: dict[tuple[Any, ...], list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.batch_key(), []).append(spec)
    return [Batch(tuple(group[a:a + max_batch]), device, diagnostics)
            for group in groups.values() for a in range(0, len(group), max_batch)]


def execute(
    specs: Iterable[RunSpec],
    *,
    monitor: bool = False,
    diagnostics: bool = True,
    device: str = "cpu",
    executor: Executor | None = None,
    max_batch: int = MAX_BATCH,
    progress: Progress | None = None,
    keep: bool = False,
    data: Data | None = None,
    callbacks: Sequence[Any] = (),
    single: bool = False,
) -> Iterator[RunRecord]:
    """Run every spec; yield records as their batch finishes.

    ``monitor``: train each run alone with a per-step Monitor (its figures' data in
    ``record.artifacts.monitor``); ``single``: train each run alone in the single-model trainer
    without one. ``keep``: records carry the trained model and Diagnosis objects in
    ``record.artifacts`` (local executor only). ``progress(specs, epochs_done)`` is called after
    every epoch of a batch. ``data`` (a Dataset or a split ``(X_train, y_train, X_val, y_val)``)
    replaces the specs' data set, e.g. a paper's prepared rows; ``callbacks`` go to every batch's
    trainer (``on_train_begin(trainer)``, ``on_epoch_end(trainer, epoch, logs)``; may set
    ``trainer.stop_training``); both need the local executor.
    """
    batches = plan(list(specs), resolve_device(device), diagnostics, monitor, max_batch, single)
    if executor is None:
        for batch in batches:
            yield from run_batch(batch, progress=progress, keep=keep, data=data, callbacks=callbacks)
        return
    if data is not None or callbacks:
        raise ValidationError("data and callbacks need the local executor (they do not travel to Ray workers)")
    for _batch, records in executor.map(run_batch, batches):
        yield from records


def initialized(specs: Sequence[RunSpec], data: Data | None = None, device: str = "cpu") -> BatchedTrainer:
    """The specs' networks at step 0, one stack, untrained (the weights their runs start from).

    For measurements at init (``.hidden(X)``, ``.weights()``, ``.predict_proba(X)``): the specs
    must share :meth:`RunSpec.batch_key` but for ``epochs``, which does not matter here.
    """
    specs = list(specs)
    keys = {spec.replace(epochs=1).batch_key() for spec in specs}
    if len(keys) != 1:
        raise ValidationError(f"initialized needs specs of one architecture and data set, got {len(keys)} kinds")
    dataset, split = _resolve_data(specs[0], data)
    return build_stack(Batch(tuple(specs), resolve_device(device)), dataset, split)


# --------------------------------------------------------------------------- one batch
class _Progress:
    def __init__(self, fn: Progress, specs: Sequence[RunSpec]) -> None:
        self.fn, self.specs = fn, specs

    def on_epoch_end(self, trainer: Any, epoch: int, logs: Any) -> None:
        self.fn(self.specs, epoch + 1)


def _output(spec: RunSpec, split: Split, data: datasets.Dataset | None = None) -> tuple[int, str]:
    """The output layer ``(units, kind)``: loss ``auto`` gives one sigmoid logit for two classes and a
    softmax over more; ``bce`` one sigmoid logit (two classes only); ``ce`` a softmax over the
    classes (two included); ``mse`` linear outputs, one per target column."""
    y = np.concatenate([split[1], split[3]])
    if spec.loss == "mse":
        return (1 if y.ndim == 1 else y.shape[1]), "linear"
    n_classes = max(2, data.n_classes if data is not None else (int(y.max()) + 1 if len(y) else 2))
    if spec.loss == "bce" and n_classes > 2:
        raise ValidationError(f"loss 'bce' needs two classes, the data have {n_classes} (use ce or auto)")
    if spec.loss == "ce" or (spec.loss == "auto" and n_classes > 2):
        return n_classes, "softmax"
    return 1, "sigmoid"


def _chance(split: Split) -> float:
    """Share of the most frequent class in the validation (else training) rows; NaN for float targets."""
    reference = split[3] if len(split[3]) else split[1]
    if reference.ndim != 1 or not np.issubdtype(reference.dtype, np.integer):
        return float("nan")
    return float(np.bincount(reference).max() / len(reference))


def _resolve_data(spec: RunSpec, data: Data | None) -> tuple[datasets.Dataset | None, Split]:
    """The spec's data set and split, or ``data`` in its place (a Dataset is split as the spec says)."""
    if data is None:
        return load_split(spec)
    if isinstance(data, datasets.Dataset):
        return data, datasets.validation_split(data.X, data.y, spec.validation_split)
    X_tr, y_tr, X_val, y_val = (np.asarray(a) for a in data)
    return None, (X_tr, y_tr, X_val, y_val)


def _init_rows(spec: RunSpec, split: Split) -> np.ndarray:
    """The training rows a data-dependent init measures on (:attr:`RunSpec.init_rows`)."""
    return split[0] if spec.init_rows is None else split[0][:spec.init_rows]


def run_batch(batch: Batch, *, progress: Progress | None = None, callbacks: Sequence[Any] = (),
              data: Data | None = None, keep: bool = False) -> list[RunRecord]:
    """Train ``batch`` and return one record per spec, in order. Pure: same batch, same records.

    ``callbacks`` go to the trainer (``on_epoch_end(trainer, epoch, logs)``; may set
    ``trainer.stop_training``); ``data`` replaces the spec's data set (the lab's uploads, a
    paper's prepared split).
    """
    trained, finish = run_batch_phases(batch, progress=progress, callbacks=callbacks, data=data, keep=keep)
    return finish(trained)


def run_batch_phases(batch: Batch, *, progress: Progress | None = None, callbacks: Sequence[Any] = (),
                     data: Data | None = None, keep: bool = False) -> tuple[Any, Callable[[Any], list[RunRecord]]]:
    """:func:`run_batch` in two phases: ``(trained, finish)``, with ``finish(trained)`` its records.

    The first phase trains (this thread); ``finish`` diagnoses the trained stack and builds the
    records, so an executor can run it in a second thread while the next batch trains (the
    trainer's kernels release the GIL): :class:`LocalExecutor` does.
    """
    data, split = _resolve_data(batch.specs[0], data)
    callbacks = [*callbacks, *([_Progress(progress, batch.specs)] if progress else [])]
    if progress:
        progress(batch.specs, 0)
    if batch.monitor or batch.single:
        return [_run_single(batch, data, split, callbacks)], list  # trained alone: the record is ready
    return _train_stacked(batch, data, split, callbacks, keep), _finish_stacked


def _diagnose_rows(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(split[0][:DIAGNOSE_ROWS]), torch.as_tensor(split[1][:DIAGNOSE_ROWS])


def _run_single(batch: Batch, data: datasets.Dataset | None, split: Split, callbacks: list[Any]) -> RunRecord:
    spec = batch.specs[0]
    X_tr, y_tr, X_val, y_val = split
    n_out, output = _output(spec, split, data)
    if spec.loss == "mse" or not spec.bias or (spec.loss == "ce" and n_out == 2):
        raise ValidationError("loss mse, ce on two classes and bias-free layers train in the batched trainer only "
                              "(without monitor)")
    model = MLP([X_tr.shape[1], *spec.hidden, n_out], spec.activation, output, residual=spec.residual)
    apply_init(model, spec.init, spec.bias_init, generator=make_generator(spec.init_seed),
               data=torch.as_tensor(_init_rows(spec, split)))
    model.to(batch.device)
    init_norms = {name: float(cast(torch.Tensor, m.weight).detach().norm()) for name, m in model.named_children() if hasattr(m, "weight")}
    diag_X, diag_y = _diagnose_rows(split)
    init_diag = diagnose(model, diag_X.to(batch.device), diag_y.to(batch.device)) if batch.diagnostics else None
    batch_size = len(X_tr) if spec.full_batch else spec.batch_size
    steps = spec.epochs * -(-len(X_tr) // batch_size)
    monitor = Monitor(model, every=max(1, steps // MONITOR_RECORDINGS)) if batch.monitor else None
    trainer = Trainer(model, spec.optimizer, spec.learning_rate, spec.momentum, spec.epochs, batch_size,
                      seed=spec.order_seed, callbacks=[*([monitor] if monitor else []), *callbacks],
                      device=batch.device)
    start = time.perf_counter()
    trainer.fit(X_tr, y_tr, X_val, y_val)
    wall = time.perf_counter() - start
    if monitor is not None:
        monitor.close()
    end_diag = diagnose(model, diag_X.to(batch.device), diag_y.to(batch.device)) if batch.diagnostics else None
    train_loss, train_acc = trainer.evaluate(X_tr, y_tr)
    val_loss, val_acc = trainer.evaluate(X_val, y_val) if len(X_val) else (float("nan"), float("nan"))
    with torch.no_grad():
        proba = model.predict_proba(torch.as_tensor(np.concatenate([X_tr, X_val])).to(batch.device))
    predicted = (proba > 0.5).long() if n_out == 1 else proba.argmax(-1)
    return RunRecord(
        spec=spec, trainer="single", device=batch.device,
        history={k: np.asarray(v, dtype=float) for k, v in trainer.history_.items()},
        diverged_epoch=trainer.diverged_epoch_,
        train_loss=train_loss, train_accuracy=train_acc, val_loss=val_loss, val_accuracy=val_acc,
        n_train=len(X_tr), n_val=len(X_val), chance_accuracy=_chance(split),
        predicted_classes=int(torch.unique(predicted).numel()),
        diagnostics_init=summarize(init_diag) if init_diag else None,
        diagnostics=summarize(end_diag) if end_diag else None, wall_time=wall,
        artifacts=RunArtifacts(model.cpu(), monitor, init_diag, end_diag, data, split, init_norms),
    )


def build_stack(batch: Batch, data: datasets.Dataset | None, split: Split, callbacks: Sequence[Any] = ()
                ) -> BatchedTrainer:
    """The batch's networks, initialized and ready to ``fit`` (their weights are the runs' step 0)."""
    specs, first = batch.specs, batch.specs[0]
    n_out, output = _output(first, split, data)
    rates = {s.learning_rate for s in specs}
    # one rate, or one per model (SGD): BatchedTrainer takes both
    learning_rate: float | list[float] = first.learning_rate if len(rates) == 1 else [s.learning_rate for s in specs]
    return BatchedTrainer(
        [split[0].shape[1], *first.hidden, n_out], first.activation, [s.init for s in specs],
        [s.init_seed for s in specs], bias_inits=[s.bias_init for s in specs],
        order_seeds=[s.order_seed for s in specs], optimizer=first.optimizer, momentum=first.momentum,
        epochs=first.epochs,
        learning_rate=learning_rate,
        batch_size=None if first.full_batch else first.batch_size, output=output, device=batch.device,
        init_data=_init_rows(first, split), callbacks=list(callbacks),
        loss="mse" if first.loss == "mse" else "auto", bias=first.bias, residual=first.residual,
    )


def diagnose_trainer(trainer: BatchedTrainer, X: torch.Tensor, y: torch.Tensor) -> list[Any]:
    """Every model's Diagnosis, from the stacked tensors (no model is rebuilt as a module)."""
    return _diagnose_stacks(trainer.stacks_, X, y)


def _diagnose_stacks(stacks: Sequence[StackedMLP], X: torch.Tensor, y: torch.Tensor) -> list[Any]:
    return [d for stack in stacks for d in diagnose_stack(stack, X, y)]


def _fit_beside_init_diagnosis(trainer: BatchedTrainer, split: Split, X: torch.Tensor, y: torch.Tensor
                               ) -> tuple[list[Any], float]:
    """Fit ``trainer`` on ``split`` while a second thread diagnoses a copy of its initial stacks:
    (the initial diagnoses, the fit's seconds). The fused kernel and torch's kernels release the
    GIL, so the diagnosis (about 80 ms per 1,000 classic nets) hides behind training on a second
    core; the numbers are those of diagnosing before the fit (the copy is the initial weights)."""
    initial = [stack.select(torch.arange(stack.m, device=stack.device)) for stack in trainer.stacks_]
    with ThreadPoolExecutor(1, thread_name_prefix="initlab-diagnose") as pool:
        pending = pool.submit(_diagnose_stacks, initial, X, y)
        start = time.perf_counter()
        trainer.fit(*split)
        wall = time.perf_counter() - start
        return pending.result(), wall


def distinct_per_row(values: np.ndarray) -> np.ndarray:
    """``(M,)`` distinct values in each row of ``values (M, N)``: ``len(np.unique(row))`` per row, in one
    sort (bools, integers and floats without NaN; every class prediction is one of those)."""
    ordered = np.sort(values.reshape(len(values), -1), axis=1)
    return 1 + (ordered[:, 1:] != ordered[:, :-1]).sum(axis=1) if ordered.shape[1] else np.zeros(len(values), int)


def _run_stacked(batch: Batch, data: datasets.Dataset | None, split: Split, callbacks: list[Any], keep: bool
                 ) -> list[RunRecord]:
    return _finish_stacked(_train_stacked(batch, data, split, callbacks, keep))


@dataclass
class _Trained:
    """A stacked batch after its fit, before its final diagnoses and records (see :func:`run_batch_phases`)."""

    batch: Batch
    data: datasets.Dataset | None
    split: Split
    trainer: BatchedTrainer
    init_diags: list[Any]
    wall: float
    keep: bool


def _train_stacked(batch: Batch, data: datasets.Dataset | None, split: Split, callbacks: list[Any], keep: bool
                   ) -> _Trained:
    trainer = build_stack(batch, data, split, callbacks)
    diag_X, diag_y = (t.to(batch.device) for t in _diagnose_rows(split))
    if batch.diagnostics:  # the initial diagnoses computed beside the fit
        init_diags, wall = _fit_beside_init_diagnosis(trainer, split, diag_X, diag_y)
    else:
        init_diags, start = [None] * len(batch.specs), time.perf_counter()
        trainer.fit(*split)
        wall = time.perf_counter() - start
    return _Trained(batch, data, split, trainer, init_diags, wall, keep)


def _finish_stacked(done: _Trained) -> list[RunRecord]:
    batch, data, split, trainer, init_diags, wall = done.batch, done.data, done.split, done.trainer, done.init_diags, done.wall
    specs = batch.specs
    X_tr, y_tr, X_val, y_val = split
    n_out, output = _output(specs[0], split, data)
    m = len(specs)
    diag_X, diag_y = (t.to(batch.device) for t in _diagnose_rows(split))
    end_diags = diagnose_trainer(trainer, diag_X, diag_y) if batch.diagnostics else [None] * m
    train_loss, train_acc = trainer.evaluate(X_tr, y_tr)  # (M,) each
    proba = trainer.predict_proba(np.concatenate([X_tr, X_val]))  # (M, N) or (M, N, K)
    predicted = (proba > 0.5) if n_out == 1 else proba.argmax(-1)
    if output == "linear":  # regression: no classes predicted
        predicted = np.zeros((len(specs), 1))
    classes = distinct_per_row(predicted).tolist()  # (M,)
    chance = _chance(split)
    records = []
    for i, spec in enumerate(specs):
        diverged = int(trainer.diverged_epoch_[i])
        width = trainer.epochs_run_ if diverged < 0 else diverged + 1  # drop the NaN padding after a stop
        history = {k: v[i, :width] for k, v in trainer.history_.items()}
        # the last epoch's validation is the final model's (nothing trains after it): not evaluated twice
        val_loss, val_acc = (history["val_loss"][-1], history["val_accuracy"][-1]) if len(X_val) else (np.nan, np.nan)
        artifacts = RunArtifacts(trainer.to_model(i), None, init_diags[i], end_diags[i], data, split) if done.keep else None
        records.append(RunRecord(
            spec=spec, trainer="batched", device=batch.device,
            history=history, diverged_epoch=None if diverged < 0 else diverged,
            train_loss=float(train_loss[i]), train_accuracy=float(train_acc[i]),
            val_loss=float(val_loss), val_accuracy=float(val_acc),
            n_train=len(X_tr), n_val=len(X_val), chance_accuracy=chance,
            predicted_classes=classes[i],
            diagnostics_init=summarize(init_diags[i]) if init_diags[i] else None,
            diagnostics=summarize(end_diags[i]) if end_diags[i] else None,
            wall_time=wall / m, artifacts=artifacts,
        ))
    return records
