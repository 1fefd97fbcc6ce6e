"""Small pieces the paper modules share: data splits, learning times, JSON-clean numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._json import json_safe

__all__ = ["digits_split", "epochs_to_threshold", "clean", "fmt", "histories"]


def digits_split(seed: int, n_val: int = 297, standardize: bool = True) -> tuple[np.ndarray, ...]:
    """sklearn's 8x8 digits, shuffled by ``seed``: ``X_train (1500, 64), y_train, X_val (297, 64), y_val``.

    With ``standardize`` the features are centred and scaled by the training rows' statistics
    (constant pixels stay 0), so that every initializer sees unit-scale inputs as the papers assume.
    """
    from ..datasets import digits

    X, y = digits(seed=seed)
    X = X.astype(np.float32)
    X_train, y_train, X_val, y_val = X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:]
    if standardize:
        mean, std = X_train.mean(0), X_train.std(0)
        std[std == 0] = 1.0
        X_train, X_val = (X_train - mean) / std, (X_val - mean) / std
    return X_train, y_train.astype(np.int64), X_val, y_val.astype(np.int64)


def epochs_to_threshold(curve: Sequence[float], threshold: float) -> int | None:
    """The first epoch (1-based) whose loss is at or below ``threshold``; None if never (or diverged)."""
    for epoch, value in enumerate(curve, start=1):
        if value is not None and math.isfinite(value) and value <= threshold:
            return epoch
    return None


def clean(x: Any, digits: int = 6) -> Any:
    """``x`` JSON-clean (:func:`initlab._json.json_safe`), floats to ``digits`` significant digits."""
    return json_safe(x, digits, significant=True)


def fmt(x: Any) -> str:
    """A number for a table cell: 3 significant digits, '-' for None."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def histories(records: Sequence[Any], key: str = "loss") -> np.ndarray:
    """``(runs, epochs)`` of one history key over run records, NaN after a run stopped (it diverged)."""
    width = max(len(r.history[key]) for r in records)
    out = np.full((len(records), width), np.nan)
    for i, r in enumerate(records):
        out[i, :len(r.history[key])] = r.history[key]
    return out
