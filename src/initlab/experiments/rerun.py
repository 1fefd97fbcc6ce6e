"""Whether a stored run can be re-run number for number: its batch and its phase at init.

A run's numbers depend on float rounding, and rounding depends on the batch the run trained in
(the batched trainer's kernels pick their summation order by the stack's shape; measured: two
compositions of one run agree at the first epoch and by ~3e-7 at the second). In the ordered
phase such differences die out; in the chaotic phase of mean-field theory (chi_1 > 1: nearby
inputs, and nearby weights, drift apart layer after layer; Poole et al. 2016, Schoenholz et al.
2017) they grow epoch after epoch until the runs differ in their final metrics (measured: tanh,
depth 20, variance scaling 4, val_loss 0.089 alone against 0.123 in a batch of 8). The store
records, per run, the batch size it trained in (``batch_runs``) and ``chi_1`` at init, so a
reader knows which stored numbers ``initlab train --spec`` cannot reproduce exactly.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from .._validation import InitlabError
from .spec import RunSpec

__all__ = ["chi_1_at_init", "rerun_note", "CHAOTIC_CHI_1"]

CHAOTIC_CHI_1 = 1.0 + 1e-6  # above this the run starts in the chaotic phase (MeanField's critical tolerance)


def chi_1_at_init(spec: RunSpec | dict[str, Any]) -> float | None:
    """Mean-field chi_1 (Poole et al. 2016) of the run's square hidden-to-hidden layers at init,
    with its weight and bias schemes; ``None`` where the theory has no value (data-dependent or
    constant schemes, a single hidden layer has no hidden-to-hidden layer either way)."""
    if isinstance(spec, dict):
        spec = RunSpec(**spec)
    hidden = list(spec.hidden)
    if len(hidden) < 2:
        return None
    return _chi_1(spec.activation, json.dumps(spec.init, sort_keys=True), json.dumps(spec.bias_init, sort_keys=True),
                  int(hidden[1]), int(hidden[0]))


@lru_cache(maxsize=256)
def _chi_1(activation: str, init: str, bias_init: str, fan_out: int, fan_in: int) -> float | None:
    from ..theory import MeanField
    from ..theory.bridge import effective_sigma_b2, effective_sigma_w2

    try:
        sigma_w2 = effective_sigma_w2(json.loads(init), fan_in, fan_out)
        sigma_b2 = effective_sigma_b2(json.loads(bias_init), fan_in, fan_out)
        value = float(MeanField(activation, sigma_w2, sigma_b2).chi_1)
    except (InitlabError, ValueError, ArithmeticError):
        return None
    return value if value == value else None


def rerun_note(chi_1: float | None, batch_runs: int | None = None) -> str | None:
    """One sentence when a run's numbers cannot be reproduced exactly by training it again, else None."""
    if chi_1 is None or chi_1 <= CHAOTIC_CHI_1:
        return None
    where = f"in a batch of {batch_runs} runs" if batch_runs and batch_runs > 1 else "in a sweep's batch"
    return (f"chi_1 = {chi_1:.3g} > 1 at init (chaotic phase): float rounding differences between a run trained "
            f"alone and {where} grow during training, so re-running it does not reproduce its numbers exactly")
