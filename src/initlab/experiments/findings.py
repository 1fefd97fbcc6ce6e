"""The measured columns of the results table and the plain-words verdict built from them.

Everything here is read off the two diagnoses of a run (``initlab.diagnose`` on the training
data before the first step and after the last) and its accuracies; nothing looks at the
experiment's name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..diagnostics import Diagnosis

if TYPE_CHECKING:
    from .run import ExperimentResult

__all__ = ["Findings", "findings", "CHANCE_MARGIN"]

CHANCE_MARGIN = 0.05  # accuracy within this of the majority-class share counts as chance level


@dataclass
class Findings:
    """What a run measured, summed over its hidden layers (one hidden layer: that layer)."""

    hidden_units: int
    distinct_units_init: int  # units whose incoming weights and bias differ (diagnostics.distinct_units)
    distinct_units: int  # ... after training
    dead_units_init: int  # units with output exactly 0 on every training input
    dead_units: int
    dead_fraction: float  # dead_units / hidden_units after training
    grad_layer: str  # the first hidden layer: the last one the error signal reaches
    grad_norm_init: float  # ||dLoss/dW|| of grad_layer at the first step (before any update)
    grad_norm_end: float  # ... after the last step
    next_weights_zero_init: bool  # the layer after grad_layer starts with all-zero weights
    codes_init: list[str]
    codes: list[str]  # verdict codes after training
    at_chance: bool  # accuracy within CHANCE_MARGIN of the majority-class share
    one_class: bool  # the final model predicts the same class for every training/validation row
    verdict: str  # plain words built from the fields above

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hidden(diag: Diagnosis):
    return diag.layers[:-1] if len(diag.layers) > 1 else diag.layers


def _dead(layers) -> int:
    return sum(round(s.dead_fraction * s.units) for s in layers)


def findings(result: ExperimentResult) -> Findings:
    """Read a run's measured columns off its diagnoses and write its verdict."""
    start, end = _hidden(result.init_diagnosis), _hidden(result.end_diagnosis)
    units = sum(s.units for s in end)
    first = start[0].name
    names = [s.name for s in result.init_diagnosis.layers]
    after = names[names.index(first) + 1] if names.index(first) + 1 < len(names) else None
    accuracy = result.val_accuracy if len(result.X_val) else result.train_accuracy
    f = Findings(
        hidden_units=units,
        distinct_units_init=sum(s.distinct_units for s in start),
        distinct_units=sum(s.distinct_units for s in end),
        dead_units_init=_dead(start),
        dead_units=_dead(end),
        dead_fraction=_dead(end) / units if units else 0.0,
        grad_layer=first,
        grad_norm_init=start[0].grad_norm,
        grad_norm_end=end[0].grad_norm,
        next_weights_zero_init=after is not None and result.init_weight_norms.get(after, 1.0) == 0.0,
        codes_init=result.init_diagnosis.codes,
        codes=result.end_diagnosis.codes,
        at_chance=bool(accuracy <= result.chance_accuracy + CHANCE_MARGIN),
        one_class=result.predicted_classes == 1,
        verdict="",
    )
    f.verdict = plain_verdict(f, diverged=result.diverged_epoch is not None)
    return f


def plain_verdict(f: Findings, diverged: bool = False) -> str:
    """A short sentence from the measurements: the problems found, or that the net is healthy."""
    parts: list[str] = []
    if diverged:
        parts.append("training diverged (non-finite loss)")
    codes = set(f.codes) | set(f.codes_init)
    if f.dead_units == f.hidden_units and f.hidden_units:
        parts.append("every hidden unit dead, so no gradient reaches the hidden layer")
    elif "dead_units" in codes and f.dead_units:
        parts.append(f"{f.dead_units} of {f.hidden_units} hidden units dead")
    if "symmetry" in codes and f.distinct_units < f.hidden_units and f.dead_units < f.hidden_units:
        parts.append(f"symmetry never broken: {f.hidden_units} hidden units act as {f.distinct_units}")
    if f.grad_norm_init == 0.0 and f.dead_units < f.hidden_units:
        parts.append("no gradient reached the hidden layer at the first step")
    for code, words in (("saturation", "units saturated"), ("vanishing_gradients", "gradients vanish with depth"),
                        ("exploding_gradients", "gradients explode with depth")):
        if code in f.codes:
            parts.append(words)
    if not parts:
        alive = f"all {f.hidden_units} alive" if not f.dead_units else f"{f.dead_units} of {f.hidden_units} dead"
        parts.append(f"healthy: {f.distinct_units} distinct hidden units, {alive}; the gradient flows")
    if f.one_class:
        parts.append("predicts one class for every point (chance level)")
    elif f.at_chance:
        parts.append("accuracy at chance level")
    text = "; ".join(parts)
    return text[0].upper() + text[1:]
