"""``initlab.verify``: does a model hold the initialization its recipe declares? (issue 23)

>>> report = initlab.verify(model, "hf")         # or "torch", "he_normal", {"*.weight": ...}
>>> report.ok, report.failures
(True, [])

Every parameter is tested against its declared law (KS, std ratio, kurtosis, max |z|; exact
equality for constants and padding rows; see :mod:`initlab.verify.stats`), with a Bonferroni
correction over all the tests of the model, so a model drawn from its recipe fails with
probability at most ``alpha``. Tied parameters (transformers' ``tie_word_embeddings``) must
still be one tensor.

``initlab.verify`` is the plain function :func:`verify` (bound by ``initlab/__init__.py``); the
subpackage's modules stay importable, and importing it is light (torch loads on first call).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from .recipes import Recipe
    from .report import VerifyReport

__all__ = ["verify", "VerifyReport", "ParamCheck", "TieCheck", "Law", "load_recipe"]  # noqa: F822  (__getattr__)

# public name -> the module that defines it (loaded on first use)
_HOME = {"VerifyReport": ".report", "ParamCheck": ".report", "TieCheck": ".report", "Law": ".law",
         "load_recipe": ".recipes", "MIN_VALUES": ".stats"}
_MIN_VALUES = 20  # stats.MIN_VALUES, without importing it (tests/test_verify.py checks they agree)


def verify(model: nn.Module, recipe: Recipe, *, alpha: float = 0.01, min_values: int = _MIN_VALUES,
           ties: Iterable[tuple[str, str]] = ()) -> VerifyReport:
    """Check every parameter of ``model`` against ``recipe``; return a :class:`VerifyReport`.

    ``recipe``: ``"hf"``, ``"torch"``, a catalog name or spec, a ``{glob: spec}`` dict or a
    ``recipe.toml`` path (see :mod:`initlab.verify.recipes`). ``alpha``: the family-wise false-alarm
    rate (Bonferroni over every test of the model). ``min_values``: a drawn parameter with fewer
    values is "untested". ``ties``: extra ``(name, target)`` pairs that must be one tensor, besides
    those the model declares (transformers' tied weights).
    """
    from .check import verify as run

    return run(model, recipe, alpha=alpha, min_values=min_values, ties=ties)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name], __name__), name)
