"""Strict JSON from measured numbers, in one place: numpy to Python, NaN and infinities to null.

:func:`json_safe` is the one cleaner (results.json, the sweep store's rows, the lab's events,
monitor files, paper reports); ``initlab.experiments.clean`` is the same function.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["json_safe"]


def json_safe(value: Any, digits: int | None = None, significant: bool = False) -> Any:
    """``value`` JSON-safe: numpy scalars and arrays to Python, NaN and infinities to ``None``, in
    dicts (keys as strings), lists and tuples too; floats rounded to ``digits`` decimals if given,
    or to ``digits`` significant digits with ``significant``."""
    if digits is None and isinstance(value, (dict, list)):
        import orjson  # a core dependency; imported here so that a bare ``import initlab`` stays light

        try:  # the same conversion in C (orjson writes non-finite floats as null): sweeps clean a lot
            return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS))
        except TypeError:
            pass  # a type orjson does not know: the general path below
    return _clean(value, digits, significant)


def _clean(value: Any, digits: int | None, significant: bool) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v, digits, significant) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, digits, significant) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f" or (significant and digits is not None):
            return _clean(value.tolist(), digits, significant)
        if digits is not None:
            value = np.round(value, digits)
        out = value.astype(object)  # Python floats, then None where not finite: no loop in Python
        out[~np.isfinite(value)] = None
        return out.tolist()
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return None
        if digits is None:
            return value
        return float(f"{value:.{digits}g}") if significant else round(value, digits)
    return value
