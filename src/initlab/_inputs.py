"""Calling a model on a batch of any kind, in one place (a leaf module: every layer may use it).

A tensor is passed as ``model(x)``, a tuple or list as positional inputs ``model(*x)``, a mapping
as keyword inputs ``model(**x)`` (e.g. ``{"input_ids": ids, "attention_mask": mask}``). Used by
``diagnose``/``doctor`` (diagnostics/io.py), LSUV (initializers/lsuv.py) and ``autoinit``
(autoinit/graph.py); each caller words its own one-line error through ``rejected``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._validation import InitlabError

__all__ = ["call_model", "error_line"]


def error_line(err: BaseException, limit: int | None = None) -> str:
    """``"TypeError: <first line of the message>"`` (the message cut at ``limit`` characters)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:limit]}" if text else type(err).__name__


def call_model(model: Callable[..., Any], inputs: Any,
               rejected: Callable[[Exception], Exception | None] | None = None) -> Any:
    """``model(x)`` for a tensor, ``model(*x)`` for a tuple or list, ``model(**x)`` for a mapping.

    An exception raised inside the model (other than initlab's own errors, which pass through)
    is handed to ``rejected``: the error it returns is raised in its place, chained to the
    model's; when it returns None (or no ``rejected`` is given) the model's exception propagates.
    """
    try:
        if isinstance(inputs, Mapping):
            return model(**inputs)
        if isinstance(inputs, (tuple, list)):
            return model(*inputs)
        return model(inputs)
    except InitlabError:
        raise
    except Exception as err:  # raised inside the user's forward
        replacement = rejected(err) if rejected is not None else None
        if replacement is None:
            raise
        raise replacement from err
