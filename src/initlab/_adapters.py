"""Models from other frameworks (a Keras 3 model is a torch module): who handles them.

The layers that take a model (``diagnostics.diagnose``, ``initializers.apply_init``) ask
:func:`adapter` whether a foreign framework's adapter handles it. Adapters live above those
layers (``initlab.integrations``), so the layers never import them: the package root registers
each one by its import path (``register``), and :func:`adapter` imports it on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

__all__ = ["register", "adapter", "framework"]

_ADAPTERS: dict[tuple[str, str], str] = {}  # (framework, operation) -> "module:function"


def register(framework: str, operation: str, target: str) -> None:
    """``framework``'s models go to ``target`` ("package.module:function") for ``operation``."""
    _ADAPTERS[(framework, operation)] = target


def framework(model: Any) -> str | None:
    """The top-level package of the first registered framework ``model``'s class comes from."""
    known = {f for f, _ in _ADAPTERS}
    for cls in type(model).__mro__:
        top = cls.__module__.split(".")[0]
        if top in known:
            return top
    return None


def adapter(model: Any, operation: str) -> Callable[..., Any] | None:
    """The function that does ``operation`` for ``model``'s framework, or None for plain torch."""
    name = framework(model)
    target = _ADAPTERS.get((name, operation)) if name else None
    if target is None:
        return None
    module, function = target.split(":")
    return cast("Callable[..., Any]", getattr(importlib.import_module(module), function))
