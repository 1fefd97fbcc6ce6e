"""initlab: a laboratory for neural-network weight initialization."""

from __future__ import annotations

__version__ = "0.1.0"

from . import _adapters, datasets, diagnostics, initializers, models, training
from ._validation import DataError, InitlabError, ValidationError

# ``initlab.autoinit`` is the function: importing the subpackage binds the module under that name on
# this package first, and this line rebinds the name to the function (later imports of
# ``initlab.autoinit.<module>`` do not rebind it). The subpackage's modules stay importable.
from .autoinit import autoinit
from .diagnostics import Diagnosis, Monitor, diagnose
from .initializers import apply_init

# Keras 3 models (torch backend) go to their adapter; nothing is imported until one is seen.
_adapters.register("keras", "diagnose", "initlab.integrations.keras:diagnose_keras")
_adapters.register("keras", "apply_init", "initlab.integrations.keras:apply_init_keras")

__all__ = [
    "__version__", "apply_init", "diagnose", "Diagnosis", "Monitor",
    "datasets", "diagnostics", "initializers", "models", "training",
    "InitlabError", "ValidationError", "DataError",
    "reproduce", "run_experiment", "ExperimentSpec", "experiments", "results", "theory", "lab",
    "autoinit", "coord_check", "verify", "transfer", "parametrize",
]

# The experiments layer pulls in matplotlib; load it on first use so `import initlab` stays light.
_LAZY = {"reproduce": "reproduce", "run_experiment": "run_experiment", "ExperimentSpec": "ExperimentSpec"}


# Subpackages with heavier imports (pandas, scipy-free quadrature tables, matplotlib), also lazy.
_LAZY_MODULES = ("experiments", "results", "theory", "server", "verify")  # verify: callable (issue 23)


def __getattr__(name: str):
    if name == "lab":  # the browser lab from a notebook (FastAPI and uvicorn load on first use)
        from .server.notebook import lab

        return lab
    if name == "coord_check":  # muP's width check (pandas on first use)
        from .coordcheck import coord_check

        return coord_check
    if name in ("transfer", "parametrize"):  # issue 24: the subpackage, callable as the function; its parametrize
        import importlib

        module = importlib.import_module(".transfer", __name__)
        return module if name == "transfer" else module.parametrize
    if name in _LAZY:
        from . import experiments

        return getattr(experiments, _LAZY[name])
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'initlab' has no attribute {name!r}")
