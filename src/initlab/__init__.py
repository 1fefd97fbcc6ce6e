"""initlab: a laboratory for neural-network weight initialization."""

from __future__ import annotations

__version__ = "0.1.0"

from . import datasets, initializers, models
from ._validation import DataError, InitlabError, ValidationError
from .initializers import apply_init

__all__ = [
    "__version__", "apply_init", "datasets", "initializers", "models",
    "InitlabError", "ValidationError", "DataError",
]
