"""Fill many same-shaped tensors with one initializer, each from its own generator, fast.

Stacks of thousands of small networks (the batched trainer, sweeps, the lab) draw every model's
weights with its own seeded generator, as ``apply_init`` would for that model alone; calling the
initializer per tensor costs tens of microseconds of Python (argument checks, fan arithmetic,
grad-mode switches) around a one-microsecond draw. :func:`filler` runs the initializer once on
a probe tensor, records the tensor operations it performs (a ``TorchFunctionMode``), and, when they are a fixed sequence of
in-place operations on the tensor itself with scalar arguments (``uniform_``, ``normal_``,
``erfinv_``, ``mul_``, ``add_``, ``clamp_``, ``zero_``, ``fill_``: every variance-scaling,
uniform, normal, truncated-normal and constant scheme), replays that sequence on each tensor
with its generator: the same kernels, arguments and generator draws, so the same numbers, bit
for bit (tested against the initializer over the catalog). Anything else (a QR decomposition, a
permutation, a value read back into Python) is not replayed: the filler calls the initializer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .registry import Initializer

__all__ = ["filler"]

_T = torch.Tensor
# In-place methods whose only tensor is the one being filled: replaying them with the same
# numbers and generator repeats the initializer exactly.
_REPLAYABLE = {_T.uniform_, _T.normal_, _T.erfinv_, _T.mul_, _T.add_, _T.sub_, _T.div_, _T.clamp_, _T.zero_, _T.fill_}
# Reading the tensor's metadata (fans, checks) and the scheme's own ``torch.no_grad()`` change nothing
# and are not replayed.
_METADATA: set[Any] = {_T.dim, _T.size, _T.numel, _T.is_floating_point, _T.__len__, torch._C._set_grad_enabled,
                        *(getattr(_T, name).__get__ for name in ("shape", "ndim", "dtype", "device", "requires_grad",
                                                                 "is_cuda"))}

Fill = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class _Recorder(TorchFunctionMode):
    """Records the in-place operations on ``target``; ``ok`` turns False at any other operation."""

    def __init__(self, target: torch.Tensor, generator: torch.Generator) -> None:
        super().__init__()
        self.target, self.generator = target, generator
        self.ops: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
        self.ok = True

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in _METADATA:
            return func(*args, **kwargs)
        rest = list(args[1:]) + list(kwargs.values())
        if (func not in _REPLAYABLE or not args or args[0] is not self.target
                or any(isinstance(a, torch.Tensor) for a in rest)
                or any(isinstance(a, torch.Generator) and a is not self.generator for a in rest)):
            self.ok = False
        else:
            self.ops.append((func, tuple(args[1:]), kwargs))
        return func(*args, **kwargs)


def filler(init: Initializer, shape: tuple[int, ...], fans: tuple[int, int] | None = None,
           dtype: torch.dtype = torch.float32) -> Fill:
    """``fill(tensor, generator)``: ``init(tensor, generator, fans=fans)`` for tensors of ``shape``,
    replayed from one recorded call where that is exact (see the module docstring)."""

    def call(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return init(tensor, generator, fans=fans)

    probe, probe_gen = torch.empty(shape, dtype=dtype), torch.Generator().manual_seed(0)
    recorder = _Recorder(probe, probe_gen)
    with torch.no_grad(), recorder:
        init(probe, probe_gen, fans=fans)
    if not recorder.ok or not recorder.ops:
        return call
    # where the probe's generator went, the tensor's generator goes (positions in args, keys in kwargs)
    ops = [(func, args, kw, [i for i, a in enumerate(args) if a is probe_gen], [k for k, v in kw.items() if v is probe_gen])
           for func, args, kw in recorder.ops]
    if len(ops) == 1 and not ops[0][3] and ops[0][4] == ["generator"]:  # one draw (uniform_, normal_): the common case
        func, args, kw, _, _ = ops[0]
        rest = {k: v for k, v in kw.items() if k != "generator"}

        def replay_one(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            if tensor.requires_grad and torch.is_grad_enabled():  # a parameter: filled outside autograd
                with torch.no_grad():
                    return replay_one(tensor, generator)
            return func(tensor, *args, generator=generator, **rest)  # type: ignore[no-any-return]

        return replay_one

    def replay(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if tensor.requires_grad and torch.is_grad_enabled():  # a parameter: filled outside autograd, as the initializer does
            with torch.no_grad():
                return replay(tensor, generator)
        for func, args, kw, gen_args, gen_kws in ops:
            if gen_args:
                args = tuple(generator if i in gen_args else a for i, a in enumerate(args))
            if gen_kws:
                kw = {**kw, **dict.fromkeys(gen_kws, generator)}
            func(tensor, *args, **kw)
        return tensor

    return replay
