"""Defaults the commands show in ``--help``, kept here so that help needs no torch.

Each equals the library's constant named beside it (``tests/test_cli_fast.py`` checks); the
library stays the authority, this module only lets ``initlab CMD --help`` answer without it.
"""

from __future__ import annotations

REPRODUCE_OUT = "initlab-out/reproduce"  # initlab.experiments.reproduce.DEFAULT_OUT
TRAIN_OUT = "initlab-out/train"  # initlab.experiments.train.DEFAULT_TRAIN_OUT
STORE = "initlab.db"  # initlab.experiments.store.DEFAULT_STORE
CLASSIC_NAMES = ("zeros_relu", "zeros_sigmoid", "xavier_tanh", "he_relu")  # initlab.experiments.reproduce.CLASSIC_NAMES
EXECUTORS = ("local", "ray")  # initlab.experiments.executors.EXECUTORS
