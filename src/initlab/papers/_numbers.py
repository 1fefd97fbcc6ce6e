"""JSON-clean numbers for the paper results of schoenholz2017, hanin2018, zhao2022 and zhang2019."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["clean"]


def clean(x: Any, digits: int = 6) -> Any:
    """``x`` JSON-clean: numpy scalars and arrays to Python, non-finite floats to None, floats rounded."""
    if isinstance(x, dict):
        return {str(k): clean(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [clean(v, digits) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return float(f"{x:.{digits}g}") if math.isfinite(x) else None
    return x
