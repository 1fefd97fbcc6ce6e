"""Experiments: specs -> runs -> results, reports (reproduce, train) and the store (sweeps)."""

from .findings import Findings, findings
from .outputs import Outputs, write_outputs
from .reproduce import CLASSIC_NAMES, classic_specs, reproduce
from .run import ExperimentResult, run_experiment
from .spec import ExperimentSpec, parse_hidden, parse_init
from .store import Store
from .sweep import BatchSpec, LocalExecutor, SweepReport, make_batches, run_batch, run_sweep
from .sweep_spec import RunSpec, SweepSpec, load_spec, parse_spec
from .train import train

__all__ = [
    "ExperimentSpec", "ExperimentResult", "run_experiment", "reproduce", "train", "classic_specs",
    "CLASSIC_NAMES", "Findings", "findings", "Outputs", "write_outputs", "parse_hidden", "parse_init",
    "Store", "SweepSpec", "RunSpec", "BatchSpec", "SweepReport", "LocalExecutor",
    "load_spec", "parse_spec", "make_batches", "run_batch", "run_sweep",
]
