"""Experiments: specs -> runs -> store (sweeps)."""

from .store import Store
from .sweep import BatchSpec, LocalExecutor, SweepReport, make_batches, run_batch, run_sweep
from .sweep_spec import RunSpec, SweepSpec, load_spec, parse_spec

__all__ = [
    "Store", "SweepSpec", "RunSpec", "BatchSpec", "SweepReport", "LocalExecutor",
    "load_spec", "parse_spec", "make_batches", "run_batch", "run_sweep",
]
