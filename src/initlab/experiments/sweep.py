"""Run a sweep: expand the grid, group compatible runs into batches, train, store.

A batch (:class:`BatchSpec`) is a picklable value and :func:`run_batch` a pure function of it
(no global state, seeds inside), so any executor can run batches: the local one here runs
them one after another in this process (one batched trainer each, torch's threads); a Ray
executor would ship the same ``run_batch`` to a cluster. Results come back to the caller,
which commits each batch to the store in one transaction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .. import __version__, datasets
from .._validation import ValidationError, check_choice, check_int
from ..diagnostics import diagnose
from ..training import BatchedTrainer
from .store import DEFAULT_STORE, Store
from .sweep_spec import RunSpec, SweepSpec, load_spec

__all__ = [
    "BatchSpec", "SweepReport", "LocalExecutor", "make_batches", "run_batch", "run_sweep", "resolve_device",
    "DIAGNOSE_ROWS", "MAX_BATCH",
]

MAX_BATCH = 1000  # runs per batch: more is faster, less loses less to a crash (one batch at most)
DIAGNOSE_ROWS = 256  # rows of the training set the diagnostics summary looks at


@dataclass(frozen=True)
class BatchSpec:
    """Runs that share data, architecture and training settings, trained together."""

    runs: tuple[RunSpec, ...]
    device: str = "cpu"
    diagnostics: bool = True

    @property
    def batch_id(self) -> str:
        return self.runs[0].run_id + f"+{len(self.runs) - 1}"


@dataclass
class SweepReport:
    """What a call to :func:`run_sweep` did."""

    spec_hash: str
    store: str
    total: int  # runs in the grid
    skipped: int  # already in the store
    trained: int  # trained now
    diverged: int  # of those trained now
    batches: int
    wall_time: float  # seconds
    device: str

    @property
    def runs_per_second(self) -> float:
        return self.trained / self.wall_time if self.wall_time > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"runs_per_second": self.runs_per_second}


class Executor(Protocol):
    """Runs batches; yields ``(batch, rows)`` as each finishes (in any order)."""

    def map(self, fn: Callable[[BatchSpec], list[dict[str, Any]]], batches: Sequence[BatchSpec]
            ) -> Iterator[tuple[BatchSpec, list[dict[str, Any]]]]: ...


@dataclass
class LocalExecutor:
    """Batches one after another in this process; each batch is one batched trainer."""

    def map(self, fn, batches):
        for batch in batches:
            yield batch, fn(batch)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` where a GPU exists, else ``cpu``; ``cuda`` without a GPU is an error."""
    device = check_choice("device", str(device).lower(), ("auto", "cpu", "cuda"))
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValidationError("device 'cuda' requested but torch sees no GPU (use --device cpu or auto)")
    return device


def make_batches(runs: Iterable[RunSpec], device: str = "cpu", diagnostics: bool = True,
                 max_batch: int = MAX_BATCH) -> list[BatchSpec]:
    """Group runs with the same :meth:`RunSpec.batch_key` into batches of at most ``max_batch``."""
    max_batch = check_int("max_batch", max_batch, 1)
    groups: dict[tuple, list[RunSpec]] = {}
    for run in runs:
        groups.setdefault(run.batch_key(), []).append(run)
    return [
        BatchSpec(tuple(group[a:a + max_batch]), device, diagnostics)
        for group in groups.values()
        for a in range(0, len(group), max_batch)
    ]


# --------------------------------------------------------------------------- one batch
def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in values]


def _diagnosis_summary(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """A small JSON summary of ``initlab.diagnose``: verdict codes and a few numbers per layer."""
    with torch.enable_grad():
        d = diagnose(model, X, y)
    return {
        "verdicts": d.codes,
        "loss": d.loss if math.isfinite(d.loss) else None,
        "layers": [
            {"name": s.name, "units": s.units, "distinct_units": s.distinct_units,
             "dead_fraction": s.dead_fraction, "saturated_fraction": s.saturated_fraction,
             "activation_std": s.std, "grad_norm": s.grad_norm}
            for s in d.layers
        ],
    }


def _load_data(run: RunSpec):
    ds = datasets.load(run.dataset, run.n_samples, run.noise, run.data_seed)
    if run.validation_split > 0:
        split = datasets.validation_split(ds.X, ds.y, run.validation_split)
    else:
        split = (ds.X, ds.y, None, None)
    return ds, split


def run_batch(batch: BatchSpec) -> list[dict[str, Any]]:
    """Train a batch of runs and return one store row (a dict) per run. Pure: same batch, same rows."""
    first = batch.runs[0]
    ds, (Xt, yt, Xv, yv) = _load_data(first)
    n_classes = max(2, ds.n_classes)
    n_out, output = (1, "sigmoid") if n_classes == 2 else (n_classes, "softmax")
    sizes = [ds.n_features, *[first.width] * first.depth, n_out]
    trainer = BatchedTrainer(
        sizes, first.activation, [r.init for r in batch.runs], [r.init_seed for r in batch.runs],
        bias_inits=[r.bias_init for r in batch.runs], data_seeds=first.data_seed, optimizer=first.optimizer,
        learning_rate=first.learning_rate, momentum=first.momentum, epochs=first.epochs,
        batch_size=first.batch_size, output=output, device=batch.device, init_data=Xt,
    )
    diag_X = torch.as_tensor(Xt[:DIAGNOSE_ROWS])
    diag_y = torch.as_tensor(yt[:DIAGNOSE_ROWS])
    if n_out == 1:
        diag_y = diag_y.float().reshape(-1, 1)
    m = len(batch.runs)
    diag_init = [_diagnosis_summary(trainer.to_model(i), diag_X, diag_y) for i in range(m)] if batch.diagnostics else [None] * m
    start = time.perf_counter()
    trainer.fit(Xt, yt, Xv, yv)
    wall = time.perf_counter() - start
    diag_final = [_diagnosis_summary(trainer.to_model(i), diag_X, diag_y) for i in range(m)] if batch.diagnostics else [None] * m
    hist = trainer.history_
    rows = []
    for i, run in enumerate(batch.runs):
        h = {k: v[i] for k, v in hist.items()}
        ran = int(np.sum(np.isfinite(h["loss"])) + (trainer.diverged_epoch_[i] >= 0))
        ran = min(ran, h["loss"].shape[0])
        last = {k: (float(v[ran - 1]) if ran and np.isfinite(v[ran - 1]) else None) for k, v in h.items()}
        has_val = "val_accuracy" in h and ran > 0 and np.isfinite(h["val_accuracy"][:ran]).any()
        best_epoch = int(np.nanargmax(h["val_accuracy"][:ran])) if has_val else None
        params = asdict(run)
        diverged = int(trainer.diverged_epoch_[i])
        rows.append({
            "run_id": run.run_id, **{k: (run.init_label if k == "init" else v) for k, v in params.items() if k != "init"},
            "init": run.init_label, "bias_init": str(run.bias_init if isinstance(run.bias_init, str) else run.bias_init),
            "params_json": params,
            "status": "diverged" if diverged >= 0 else "finished",
            "diverged_epoch": diverged if diverged >= 0 else None,
            "epochs_run": ran,
            "final_loss": last.get("loss"), "final_accuracy": last.get("accuracy"),
            "final_val_loss": last.get("val_loss"), "final_val_accuracy": last.get("val_accuracy"),
            "best_val_accuracy": float(np.nanmax(h["val_accuracy"][:ran])) if has_val else None,
            "best_val_loss": float(np.nanmin(h["val_loss"][:ran])) if has_val else None,
            "best_epoch": best_epoch,
            "history_json": {k: _nan_to_none(v[:ran]) for k, v in h.items()},
            "diag_init_json": diag_init[i], "diag_final_json": diag_final[i],
            "wall_time": wall / m, "batch_id": batch.batch_id, "batch_runs": m,
            "device": batch.device, "initlab_version": __version__,
        })
    return rows


# --------------------------------------------------------------------------- a sweep
def run_sweep(
    spec: SweepSpec | str | Path,
    store: str | Path = DEFAULT_STORE,
    device: str = "auto",
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_batch: int = MAX_BATCH,
) -> SweepReport:
    """Train every run of ``spec`` not yet in ``store``, committing each batch atomically.

    ``progress(done, total)`` is called after each committed batch (and once at the start), with
    ``done`` counting runs already in the store. Re-running the same spec trains nothing new.
    """
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    device = resolve_device(device)
    executor = executor or LocalExecutor()
    start = time.perf_counter()
    runs = spec.runs()
    by_id = {r.run_id: r for r in runs}
    with Store(store) as db:
        db.add_sweep(spec.spec_hash, spec.name, spec.source or {"data": spec.data, "grid": spec.grid, "train": spec.train}, len(runs))
        done = db.done_ids(by_id)
        db.link(spec.spec_hash, done)  # trained for another spec: count them here too
        todo = [r for r in runs if r.run_id not in done]
        batches = make_batches(todo, device, spec.train["diagnostics"], max_batch)
        n_done, diverged = len(done), 0
        if progress:
            progress(n_done, len(runs))
        for _batch, rows in executor.map(run_batch, batches):
            db.commit_batch(spec.spec_hash, rows)
            n_done += len(rows)
            diverged += sum(row["status"] == "diverged" for row in rows)
            if progress:
                progress(n_done, len(runs))
    return SweepReport(spec.spec_hash, str(store), len(runs), len(done), len(todo), diverged, len(batches),
                       time.perf_counter() - start, device)
