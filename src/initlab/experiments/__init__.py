"""Experiments: one run spec -> execute -> one run record; reports (reproduce, train), sweeps and their store."""

from .execute import Batch, LocalExecutor, execute, load_split, plan, run_batch
from .findings import Findings, findings
from .outputs import Outputs, write_outputs
from .record import RunRecord, clean
from .reproduce import CLASSIC_NAMES, classic_specs, reproduce
from .run import ExperimentResult, run_experiment
from .spec import ExperimentSpec, RunSpec, parse_hidden, parse_init
from .store import Store
from .sweep import SweepReport, make_batches, run_sweep
from .sweep_spec import SweepSpec, load_spec, parse_spec
from .train import load_specs, train, train_many

__all__ = [
    "RunSpec", "RunRecord", "execute", "plan", "run_batch", "load_split", "Batch", "LocalExecutor", "clean",
    "ExperimentSpec", "ExperimentResult", "run_experiment", "reproduce", "train", "train_many", "load_specs",
    "classic_specs", "CLASSIC_NAMES", "Findings", "findings", "Outputs", "write_outputs", "parse_hidden",
    "parse_init", "Store", "SweepSpec", "SweepReport", "load_spec", "parse_spec", "make_batches", "run_sweep",
]
