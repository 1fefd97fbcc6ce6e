"""Experiments: one run spec -> execute -> one run record; reports (reproduce, train), sweeps and their store.

The run core (spec, execute, record, store, sweep) loads eagerly; the report side (reproduce,
train, outputs: matplotlib) loads on first use, so ``initlab sweep`` starts without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..runspec import ExperimentSpec, RunSpec, parse_hidden, parse_init
from .execute import Batch, LocalExecutor, execute, initialized, load_split, plan, run_batch
from .findings import Findings, findings
from .record import RunRecord, clean
from .reproduce import CLASSIC_NAMES, classic_specs, reproduce
from .store import Store
from .sweep import SweepReport, make_batches, run_sweep
from .sweep_spec import SweepSpec, load_spec, parse_spec
from .train import load_specs, train, train_many

_LAZY = {
"Outputs": "outputs", "write_outputs": "outputs",
    "ExperimentResult": "run", "run_experiment": "run",
}

__all__ = [
    "RunSpec", "RunRecord", "execute", "initialized", "plan", "run_batch", "load_split", "Batch", "LocalExecutor", "clean",
    "ExperimentSpec", "parse_hidden", "parse_init", "Store", "SweepSpec", "SweepReport", "load_spec",
    "parse_spec", "make_batches", "run_sweep", "reproduce", "classic_specs", "CLASSIC_NAMES", "train",
    "train_many", "load_specs", "Findings", "findings", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
