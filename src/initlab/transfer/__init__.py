"""Does the learning rate transfer across width and depth? (``initlab transfer``, issue 24)

Train every (parametrization, width, depth, learning rate, seed) of a grid, find the best
learning rate per width with a bootstrap interval over seeds, and measure its drift in octaves
per doubling of width (Yang et al. 2022, "Tensor Programs V", figure 1). Parametrizations (SP,
muP, u-muP, depth-muP, CompleteP) are also usable alone through :func:`parametrize`.

    result = initlab.transfer(family="mlp", widths=[64, 256, 1024], parametrizations="sp,mup")
    [d.to_dict() for d in result.drift]
    result.save("initlab-out/transfer")

``initlab.transfer`` is the plain function :func:`transfer` (bound by ``initlab/__init__.py``);
the subpackage's modules stay importable, and importing it is light (torch loads on first call).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from .run import TransferResult

__all__ = [  # noqa: F822  (loaded on first use by __getattr__)"transfer", "TransferResult", "Cell", "Drift", "parametrize", "Parametrized", "Parametrization", "Rule",
           "PARAMETRIZATIONS", "names", "parse_lrs", "parse_sizes", "TOLERANCE"]

# public name -> the module that defines it (loaded on first use)
_HOME = {
    **dict.fromkeys(["TOLERANCE", "Drift"], ".analysis"),
    **dict.fromkeys(["PARAMETRIZATIONS", "Parametrization", "Parametrized", "Rule", "names", "parametrize"],
                    ".parametrizations"),
    **dict.fromkeys(["Cell", "TransferResult", "parse_lrs", "parse_sizes"], ".run"),
}


def transfer(
    factory: Callable[..., nn.Module] | None = None,
    *,
    family: str = "mlp",
    task: str | None = None,
    widths: str | Sequence[int] | None = None,
    depths: str | Sequence[int] | None = None,
    lrs: str | Sequence[float] | None = None,
    parametrizations: str | Sequence[str] = ("sp", "mup"),
    seeds: int = 3,
    steps: int | None = None,
    batch: int | None = None,
    base_width: int | None = None,
    base_depth: int | None = None,
    data_seed: int = 0,
    tolerance: float | None = None,
    store: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TransferResult:
    """Train the grid and measure, per parametrization, the drift of the best learning rate in
    octaves per doubling of width (and of depth when ``depths`` has several values).

    ``factory``: a user's ``factory(width)`` or ``factory(width, depth)`` returning an ``nn.Module``
    for ``task`` (``digits``: (B, 64) floats -> (B, 10) logits; ``sequence``: (B, 16) token ids ->
    (B, 16, 32) logits); else the built-in ``family`` (``mlp`` or ``transformer``). ``lrs``:
    ``"2^-12:2^-1"`` or a list (default: that range, ``2^-7:2^4`` for ``umup``).
    ``base_width``/``base_depth``: where muP equals SP (default the smallest). ``tolerance``: the
    drift band for "transfers" in octaves per doubling (default :data:`TOLERANCE`, 0.25).
    ``store``: a SQLite file; cells already there are not trained again.
    Returns a :class:`TransferResult` (``.to_dict()``, ``.figure()``, ``.save(out)``).
    """
    from .run import transfer as run

    extra = {} if tolerance is None else {"tolerance": tolerance}
    return run(factory, family=family, task=task, widths=widths, depths=depths, lrs=lrs,
               parametrizations=parametrizations, seeds=seeds, steps=steps, batch=batch, base_width=base_width,
               base_depth=base_depth, data_seed=data_seed, store=store, progress=progress, **extra)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name], __name__), name)
