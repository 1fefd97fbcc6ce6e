"""The diagnostics' view of a traced forward pass: :class:`initlab.trace.Tracer`'s rows, plus each
row's output gradient for the Monitor.

What a pass reaches is listed in :mod:`initlab.trace.ops` and :mod:`initlab.trace.tracer`
(modules, functional calls on the model's parameters, norms, attention, repeated blocks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..trace import ACTIVATION_MODULES, FUNCTIONAL, PASS_THROUGH, WEIGHTED, BlockRecord, NormRecord, Record, Tracer

__all__ = ["ACTIVATION_MODULES", "FUNCTIONAL", "PASS_THROUGH", "WEIGHTED", "Record", "NormRecord", "BlockRecord",
           "Recorder", "record_forward", "recording"]


class Recorder(Tracer):
    """A :class:`~initlab.trace.Tracer` on ``model``; ``keep_grads`` registers tensor hooks that store
    each row's output gradient in :attr:`grads` during ``backward`` (the Monitor's way; ``diagnose``
    asks autograd directly)."""

    def __init__(self, model: nn.Module, functional: bool = True, keep_grads: bool = False) -> None:
        super().__init__(model, functional=functional)
        self.keep_grads = keep_grads
        self.grads: dict[int, torch.Tensor] = {}  # row index -> d loss / d output

    def attach(self) -> Recorder:
        if not self.attached:
            self.grads = {}
        super().attach()
        return self

    def _add(self, rec: Record) -> None:
        super()._add(rec)
        if self.keep_grads and rec.output.requires_grad:
            index = len(self.records) - 1
            # torch's Tensor.register_hook is unannotated
            rec.output.register_hook(lambda g, i=index: self.grads.__setitem__(i, g))  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def record_forward(model: nn.Module, functional: bool = True) -> Iterator[list[Record]]:
    """Record the next forward pass of ``model``; yields the list of rows, filled during the
    forward pass. The hooks are always removed on exit."""
    recorder = Recorder(model, functional=functional).attach()
    try:
        yield recorder.records
    finally:
        recorder.detach()


@contextlib.contextmanager
def recording(model: nn.Module) -> Iterator[Recorder]:
    """Like :func:`record_forward`, yielding the whole :class:`Recorder` (norms, attention, blocks, uses)."""
    recorder = Recorder(model, functional=True).attach()
    try:
        yield recorder
    finally:
        recorder.detach()
