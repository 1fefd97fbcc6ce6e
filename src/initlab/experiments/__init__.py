"""Experiments: specs -> runs -> results and reports."""

from .findings import Findings, findings
from .outputs import Outputs, write_outputs
from .reproduce import CLASSIC_NAMES, classic_specs, reproduce
from .run import ExperimentResult, run_experiment
from .spec import ExperimentSpec, parse_hidden, parse_init
from .train import train
