"""initlab: a laboratory for neural-network weight initialization.

Importing ``initlab`` is light (no torch): every public name below loads its module on first
use, so ``initlab --help`` answers at once and ``import initlab`` changes no global state.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _adapters
from ._version import __version__

# ``initlab.autoinit``, ``initlab.verify`` and ``initlab.transfer`` are plain functions. Importing a
# subpackage binds the module under its name on this package; these lines rebind each name to its function (later
# imports of ``initlab.autoinit.<module>`` do not rebind it). The subpackages import light.
from .autoinit import autoinit
from .transfer import transfer
from .verify import verify

# Keras 3 models (torch backend) go to their adapter; nothing is imported until one is seen.
_adapters.register("keras", "diagnose", "initlab.integrations.keras:diagnose_keras")
_adapters.register("keras", "apply_init", "initlab.integrations.keras:apply_init_keras")

__all__ = [
    "__version__", "apply_init", "diagnose", "Diagnosis", "Monitor",
    "datasets", "diagnostics", "initializers", "models", "training",
    "InitlabError", "ValidationError", "DataError",
    "reproduce", "run_experiment", "ExperimentSpec", "experiments", "results", "theory", "lab",  # noqa: F822
    "autoinit", "verify", "coord_check", "transfer", "parametrize",  # noqa: F822  (lazy: __getattr__)
]

# public name -> (module, attribute); attribute None: the module itself
_LAZY: dict[str, tuple[str, str | None]] = {
    "apply_init": (".initializers", "apply_init"),
    "diagnose": (".diagnostics", "diagnose"),
    "Diagnosis": (".diagnostics", "Diagnosis"),
    "Monitor": (".diagnostics", "Monitor"),
    "InitlabError": ("._validation", "InitlabError"),
    "ValidationError": ("._validation", "ValidationError"),
    "DataError": ("._validation", "DataError"),
    "reproduce": (".experiments", "reproduce"),
    "run_experiment": (".experiments", "run_experiment"),
    "ExperimentSpec": (".experiments", "ExperimentSpec"),
    "lab": (".server.notebook", "lab"),  # the browser lab from a notebook (FastAPI and uvicorn)
    "coord_check": (".coordcheck", "coord_check"),  # muP's width check (pandas on first use)
    "parametrize": (".transfer.parametrizations", "parametrize"),  # issue 24
    **{name: (f".{name}", None) for name in (
        "datasets", "diagnostics", "initializers", "models", "training",
        "experiments", "results", "theory", "server", "papers",
    )},
}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads these
    from . import datasets, diagnostics, experiments, initializers, models, results, theory, training
    from ._validation import DataError, InitlabError, ValidationError
    from .coordcheck import coord_check
    from .diagnostics import Diagnosis, Monitor, diagnose
    from .experiments import ExperimentSpec, reproduce, run_experiment  # type: ignore[no-redef]
    from .initializers import apply_init


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'initlab' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
