"""``initlab.autoinit``: one call that initializes every layer of any model (issue 10).

``initlab.autoinit`` is the plain function :func:`autoinit` (bound by ``initlab/__init__.py``);
this subpackage's modules stay importable as ``initlab.autoinit.<module>``. Importing it is
light: the function loads its machinery (torch, the tracer, quadrature) on first call.

``autoinit(model, example)`` finds what follows each weight (op by op, on one forward pass),
predicts the moments through every op (quadrature for any activation), scales each weight so
its output keeps ``target_std``, then measures each module's output on the example and returns
an :class:`AutoInitReport`. On any failure the model is left exactly as it was.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .report import AutoInitReport, ParamEntry, UnhealthyInitError

__all__ = ["autoinit", "AutoInitReport", "ParamEntry", "UnhealthyInitError"]

# public name -> the module that defines it (loaded on first use)
_HOME = {"AutoInitReport": ".report", "ParamEntry": ".report", "UnhealthyInitError": ".report",
         "MODES": ".initialize", "measure": ".initialize"}


def autoinit(
    model: nn.Module,
    example: Any = None,
    *,
    input_shape: tuple[int, ...] | None = None,
    mode: str = "analytic",
    target_std: float = 1.0,
    generator: torch.Generator | int | None = None,
    tol: float = 0.1,
    max_iter: int = 10,
) -> AutoInitReport:
    """Initialize every weight of ``model`` in place so each layer's output keeps ``target_std``.

    ``example``: a batch the model accepts (a tensor, a tuple of inputs, or a dict of keyword
    inputs); without it, one is drawn for ``input_shape`` (N(0, 1), or token ids if the model
    starts with an embedding), or for the first layer's shape when torch.fx can find it.
    ``mode="analytic"`` predicts moments (quadrature per activation, sums, norms, ...);
    ``mode="empirical"`` measures and rescales layer by layer on the example (graph LSUV,
    Mishkin & Matas 2016; ``tol`` and ``max_iter`` apply to it). Atomic: on any error the model's
    parameters and buffers are restored and the error raised (a ValidationError in one line for
    bad input). Returns an :class:`AutoInitReport`; ``report.assert_healthy()`` raises if a
    measured output std is off or an activation is unstable across depth.
    """
    from .initialize import autoinit as run

    return run(model, example, input_shape=input_shape, mode=mode, target_std=target_std, generator=generator,
               tol=tol, max_iter=max_iter)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name], __name__), name)
