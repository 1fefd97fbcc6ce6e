"""The measured columns of the results table and the plain-words verdict built from them.

Everything here is read off the two diagnoses of a run (``initlab.diagnose`` on the training
data before the first step and after the last) and its accuracies; nothing looks at the
experiment's name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..diagnostics import Diagnosis, LayerStats
from ..diagnostics.symmetry import ROUNDING_SPLIT

if TYPE_CHECKING:
    from .run import ExperimentResult

__all__ = ["Findings", "findings", "plain_verdict", "one_unit_words", "chance_loss", "rounding_split",
           "ROUNDING_SPLIT", "CHANCE_MARGIN", "CHANCE_LOSS_SHARE"]

CHANCE_MARGIN = 0.05  # accuracy within this of the majority-class share counts as chance level
CHANCE_LOSS_SHARE = 0.95  # a training loss above this share of the chance loss: the net has not learned


def chance_loss(y: Any) -> float:
    """Cross-entropy (nats) of a model that predicts the class shares of ``y`` for every row: what a net that
    learned nothing from the inputs scores at best (ln 2 for two balanced classes, ln 10 for ten)."""
    counts = np.bincount(np.asarray(y).astype(np.int64).ravel())
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@dataclass
class Findings:
    """What a run measured, summed over its hidden layers (one hidden layer: that layer)."""

    hidden_units: int
    distinct_units_init: int  # interchangeable units count once (same incoming, bias and outgoing weights)
    distinct_units: int  # ... after training
    dead_units_init: int  # units with output exactly 0 and activation slope exactly 0 on every training input
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
    hidden_layers: int = 1  # weighted layers before the output layer
    epochs: int = 0  # epochs trained
    distinct_units_first: int = 0  # distinct units of the first hidden layer after training (1: a one-unit net)
    weights_zero_init: list[str] = field(default_factory=list)  # weighted layers whose weights are all exactly 0 at step 0
    weights_zero_end: list[str] = field(default_factory=list)  # ... after training
    # hidden layers whose weights and bias are exactly 0 at step 0 and after training, with a weight
    # gradient of exactly 0 at both ends: layers that did not learn anything
    stuck_layers: list[str] = field(default_factory=list)
    train_loss: float = float("nan")  # of the final model on all training rows
    chance_loss: float = float("nan")  # cross-entropy of predicting the training rows' class shares (no learning)
    train_at_chance: bool = False  # training loss >= CHANCE_LOSS_SHARE x chance_loss, or training accuracy at chance

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hidden(diag: Diagnosis) -> list[LayerStats]:
    return diag.layers[:-1] if len(diag.layers) > 1 else diag.layers


def _dead(layers: list[LayerStats]) -> int:
    return sum(round(s.dead_fraction * s.units) for s in layers)


def _zero(s: LayerStats) -> bool:
    return bool(s.weighted and s.weight_norm == 0.0)


def _stuck(start: list[LayerStats], end: list[LayerStats]) -> list[str]:
    ends = {s.name: s for s in end}
    out = []
    for a in start:
        b = ends.get(a.name)
        if (b is not None and a.weighted and _zero(a) and _zero(b) and a.bias_norm == 0.0 and b.bias_norm == 0.0
                and a.grad_norm == 0.0 and b.grad_norm == 0.0):
            out.append(a.name)
    return out


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
        next_weights_zero_init=after is not None and _zero(result.init_diagnosis.layer(after)),
        codes_init=result.init_diagnosis.codes,
        codes=result.end_diagnosis.codes,
        at_chance=bool(accuracy <= result.chance_accuracy + CHANCE_MARGIN),
        one_class=result.predicted_classes == 1,
        verdict="",
        hidden_layers=len([s for s in end if s.weighted]),
        epochs=int(result.spec.epochs),
        distinct_units_first=end[0].distinct_units,
        weights_zero_init=[s.name for s in result.init_diagnosis.layers if _zero(s)],
        weights_zero_end=[s.name for s in result.end_diagnosis.layers if _zero(s)],
        stuck_layers=_stuck(start, end),
        train_loss=float(result.train_loss),
        chance_loss=chance_loss(result.y_train),
    )
    f.train_at_chance = bool(not f.train_loss < CHANCE_LOSS_SHARE * f.chance_loss
                             or result.train_accuracy <= result.chance_accuracy + CHANCE_MARGIN)
    f.verdict = plain_verdict(f, diverged=result.diverged_epoch is not None)
    return f


def rounding_split(f: Findings) -> str:
    """When units that started identical ended distinct: say so and why (empty otherwise)."""
    if f.distinct_units_init >= f.hidden_units or f.distinct_units <= f.distinct_units_init:
        return ""
    return (f"units that started identical ({f.distinct_units_init} distinct of {f.hidden_units} at step 0) ended "
            f"as {f.distinct_units} distinct: {ROUNDING_SPLIT}")


def one_unit_words(f: Findings) -> str:
    """What a first hidden layer with one distinct unit can draw: every layer above sees one number per input."""
    return "a straight boundary at best" if f.hidden_layers == 1 else "straight, parallel boundaries at best"


def _g(value: float) -> str:
    return "0" if value == 0.0 else f"{value:.3g}"


def plain_verdict(f: Findings, diverged: bool = False) -> str:
    """A short sentence from the measurements: the problems found, or what was measured when none was."""
    parts: list[str] = []
    if diverged:
        parts.append("training diverged (non-finite loss)")
    codes = set(f.codes) | set(f.codes_init)
    all_dead = bool(f.hidden_units) and f.dead_units == f.hidden_units
    if all_dead:
        parts.append(f"every hidden unit dead (gradient reaching {f.grad_layer}: {_g(f.grad_norm_init)} at step 0, "
                     f"{_g(f.grad_norm_end)} at the end)")
    elif "dead_units" in codes and f.dead_units:
        parts.append(f"{f.dead_units} of {f.hidden_units} hidden units dead")
    stuck = [] if all_dead else f.stuck_layers
    if stuck:
        parts.append(f"stuck: the weights and bias of {', '.join(stuck)} are exactly 0 at step 0 and still exactly 0 "
                     f"after {f.epochs} epochs, with a gradient of exactly 0 at both ends")
    chance = "predicts one class for every point (chance level)" if f.one_class else (
        "accuracy at chance level" if f.at_chance else "")
    if "symmetry" in codes and f.distinct_units < f.hidden_units and not all_dead:
        text = f"symmetric after {f.epochs} epochs: {f.hidden_units} hidden units act as {f.distinct_units}"
        if f.distinct_units_first == 1 and not stuck:
            first = "" if f.hidden_layers == 1 else f"; {f.grad_layer} acts as 1 unit"
            text += f"{first}, so the net is effectively a one-unit net ({one_unit_words(f)})"
            if chance:  # a one-unit net can still split the points: symmetry does not force chance level
                text += f"; after {f.epochs} epochs it had not yet learned even that: {chance}"
                chance = ""
        parts.append(text)
    if rounding_split(f):
        parts.append(f"symmetry broken by rounding, not by the init: {rounding_split(f)}")
    if f.grad_norm_init == 0.0 and not all_dead and not stuck:
        parts.append(f"no gradient reached {f.grad_layer} at step 0 ({_g(f.grad_norm_end)} at the end)")
    for code, words in (("saturation", "units saturated"), ("vanishing_gradients", "gradients vanish with depth"),
                        ("exploding_gradients", "gradients explode with depth")):
        if code in f.codes:
            parts.append(words)
    if not parts:
        alive = "none dead" if not f.dead_units else f"{f.dead_units} of {f.hidden_units} dead"
        parts.append(f"healthy: {f.distinct_units} of {f.hidden_units} hidden units distinct, {alive}; gradient "
                     f"reaching {f.grad_layer} {_g(f.grad_norm_init)} at step 0, {_g(f.grad_norm_end)} at the end")
        if f.train_at_chance and not chance:
            chance = (f"but after {f.epochs} epochs it has not learned: training loss {f.train_loss:.3g} vs "
                      f"{f.chance_loss:.3g} at chance (predicting the class shares)")
    if chance and stuck and f.one_class:
        chance += f": with {stuck[0]}'s weights and bias exactly 0, every input gives the same hidden output"
    if chance:
        parts.append(chance)
    text = "; ".join(parts)
    return text[0].upper() + text[1:]
