"""The one diagnosis pipeline: measured rows -> depth changes -> rates -> verdicts -> :class:`Diagnosis`.

Every front measures its rows its own way (``diagnose`` on any ``nn.Module``, ``diagnose_keras``
on a Keras model, ``diagnose_stack`` on M stacked MLPs at once) and hands them to
:func:`diagnosis_from_rows`, so one model gets one judgement whichever front measured it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..trace import Attention
from . import thresholds as T
from .chains import fill_changes, rates
from .types import Coverage, Diagnosis, LayerStats
from .verdicts import verdicts

__all__ = ["diagnosis_from_rows", "attention_rows", "default_loss", "surrogate_loss"]


def default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for class indices with several outputs, BCE from logits for 0/1 targets on one
    output, else MSE."""
    if targets.dtype in (torch.int64, torch.int32) and outputs.ndim == 2 and outputs.shape[1] > 1:
        return nn.functional.cross_entropy(outputs, targets)
    targets = targets.reshape(outputs.shape).to(outputs.dtype)
    if outputs.shape[-1] == 1 and bool(((targets == 0) | (targets == 1)).all()):
        return nn.functional.binary_cross_entropy_with_logits(outputs, targets)
    return nn.functional.mse_loss(outputs, targets)


def surrogate_loss(outputs: torch.Tensor) -> torch.Tensor:
    """Without targets: project the outputs on a fixed random direction, so every output unit
    receives a unit-variance gradient whatever the outputs' scale (a signal-propagation probe)."""
    direction = torch.randn(outputs.shape, generator=torch.Generator().manual_seed(0)).to(outputs)
    return (outputs * direction).sum() / outputs.shape[0]


def attention_rows(attention: Sequence[Attention]) -> list[dict[str, Any]]:
    """One dict per measured attention softmax: name, logit std, entropy, largest weight, the share
    of queries collapsed onto one key (largest weight >= ``thresholds.COLLAPSED_WEIGHT``), heads
    (0 when folded into the batch), keys, layout."""
    return [{"name": a.name, "logit_std": a.logit_std, "entropy": a.entropy, "max_weight": a.max_weight,
             "collapsed_fraction": a.collapsed_fraction(T.COLLAPSED_WEIGHT), "heads": a.heads, "keys": a.keys,
             "layout": a.layout} for a in attention]


def diagnosis_from_rows(layers: list[LayerStats], loss: float, *, input_shape: tuple[int, ...] = (),
                        samples: dict[str, dict[str, np.ndarray]] | None = None, coverage: Coverage | None = None,
                        norms: list[dict[str, Any]] | None = None, attention: list[dict[str, Any]] | None = None,
                        blocks: list[dict[str, Any]] | None = None, readout: dict[str, Any] | None = None,
                        cls: type[Diagnosis] = Diagnosis,
                        **extra: Any) -> Diagnosis:
    """The :class:`Diagnosis` of measured ``layers``: fills each chained row's ``std_change`` and
    ``grad_change``, the across-model rates, and the verdicts (``thresholds.py``). ``cls`` and
    ``readout``: the output at init against class targets (:func:`.readout.measure_readout`), judged
    with the rest. ``extra``: a front's own Diagnosis subclass and its fields (the Keras front's ``not_measured``)."""
    fill_changes(layers)
    std_rate, grad_rate = rates(layers)
    found = verdicts(layers, coverage=coverage, loss=loss, blocks=blocks, attention=attention, readout=readout)
    return cls(layers, found, loss, std_rate, grad_rate, tuple(input_shape), samples or {}, coverage,
               list(norms or []), list(attention or []), list(blocks or []), **extra)
