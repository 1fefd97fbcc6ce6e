"""Shared checks and the error types the library raises.

The library never prints and never exits: it raises :class:`InitlabError` subclasses whose
message is one line naming the field, what was expected, what was received and, where it
helps, a "did you mean". ``initlab.cli`` turns them into exit code 2.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

__all__ = [
    "InitlabError",
    "ValidationError",
    "DataError",
    "did_you_mean",
    "check_choice",
    "check_int",
    "check_float",
    "check_out_folder",
]


class InitlabError(Exception):
    """Base class of every error initlab raises on purpose (bad input, bad data)."""


class ValidationError(InitlabError, ValueError):
    """A parameter has a value outside what is allowed."""


class DataError(InitlabError, ValueError):
    """A data file or array cannot be used (missing, malformed, one class only, ...)."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""`` if none is close."""
    close = difflib.get_close_matches(str(value).lower(), list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def check_choice(field: str, value: Any, choices: Iterable[str], hint: str = "") -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ValidationError naming them."""
    choices = list(choices)
    if value in choices:
        return cast(str, value)  # one of the (str) choices
    allowed = ", ".join(choices)
    tail = f"; {hint}" if hint else ""
    raise ValidationError(
        f"unknown {field} {value!r}{did_you_mean(value, choices)} (allowed: {allowed}{tail})"
    )


def check_int(field: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as int if it is an integer in [minimum, maximum], else raise."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        hasattr(value, "__index__")
    ):
        raise ValidationError(f"{field} must be an integer, got {value!r}")
    out = int(value)
    _check_range(field, out, minimum, maximum, "an integer")
    return out


def check_float(
    field: str, value: Any, minimum: float | None = None, maximum: float | None = None,
    *, strict_minimum: bool = False,
) -> float:
    """Return ``value`` as float if it is a finite number in range, else raise."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} must be a number, got {value!r}") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise ValidationError(f"{field} must be finite, got {value!r}")
    if strict_minimum and minimum is not None and out <= minimum:
        raise ValidationError(f"{field} must be > {minimum}, got {value!r}")
    _check_range(field, out, minimum, maximum, "a number")
    return out


def _check_range(field: str, value: float, minimum: float | None, maximum: float | None, kind: str) -> None:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        raise ValidationError(f"{field} must be {kind} in [{lo}, {hi}], got {value!r}")


def check_out_folder(field: str, path: str | os.PathLike[str]) -> Path:
    """Return ``path`` if an output folder can be created or reused there (checked before any work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValidationError(f"{field} {str(path)!r} is a file, not a folder; give a folder path")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValidationError(f"{field} {str(path)!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValidationError(f"{field} {str(path)!r}: no permission to write in {str(parent)!r}")
    return path
