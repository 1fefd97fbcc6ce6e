"""Does the learning rate transfer across width and depth? (``initlab transfer``, issue 24)

Train every (parametrization, width, depth, learning rate, seed) of a grid, find the best
learning rate per width with a bootstrap interval over seeds, and measure its drift in octaves
per doubling of width (Yang et al. 2022, "Tensor Programs V", figure 1). Parametrizations (SP,
muP, u-muP, depth-muP, CompleteP) are also usable alone through :func:`parametrize`.

    result = initlab.transfer(family="mlp", widths=[64, 256, 1024], parametrizations="sp,mup")
    [d.to_dict() for d in result.drift]
    result.save("initlab-out/transfer")
"""

from __future__ import annotations

import sys as _sys
import types as _types
from typing import Any as _Any

from .analysis import TOLERANCE, Drift
from .parametrizations import PARAMETRIZATIONS, Parametrization, Parametrized, Rule, names, parametrize
from .run import Cell, TransferResult, parse_lrs, parse_sizes, transfer

__all__ = ["transfer", "TransferResult", "Cell", "Drift", "parametrize", "Parametrized", "Parametrization", "Rule",
           "PARAMETRIZATIONS", "names", "parse_lrs", "parse_sizes", "TOLERANCE"]


class _CallableModule(_types.ModuleType):
    """``initlab.transfer`` is both this subpackage and the function: importing a subpackage binds its
    name on the parent package, which would otherwise shadow the function (as ``initlab.autoinit``)."""

    def __call__(self, *args: _Any, **kwargs: _Any) -> TransferResult:
        return transfer(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
