"""initlab: a laboratory for neural-network weight initialization."""

from __future__ import annotations

__version__ = "0.1.0"

from . import datasets, diagnostics, initializers, models, training
from ._validation import DataError, InitlabError, ValidationError
from .diagnostics import Diagnosis, Monitor, diagnose
from .initializers import apply_init

__all__ = [
    "__version__", "apply_init", "diagnose", "Diagnosis", "Monitor",
    "datasets", "diagnostics", "initializers", "models", "training",
    "InitlabError", "ValidationError", "DataError",
]
