"""Verdicts: what the measurements of one diagnose pass mean, in plain words, with a fix.

Every verdict is decided by a measured number against a threshold of ``thresholds.py``;
activation names only choose the wording of the suggested fix.
"""

from __future__ import annotations

import math

from . import thresholds as T
from .diagnose import LayerStats, Verdict, hidden_weighted

__all__ = ["verdicts", "suggest_init"]

RELU_FAMILY = {"relu", "leaky_relu", "elu", "gelu", "silu", "mish", "celu", "softplus"}


def _names(layers: list[LayerStats]) -> list[str]:
    return [s.name for s in layers]


def suggest_init(layers: list[LayerStats]) -> str:
    """The variance-preserving init for these layers' activations, with the weight std it gives."""
    acts = {s.activation or "linear" for s in layers}
    now = _median([s.weight_std for s in layers])
    healthy = _median([s.healthy_weight_std for s in layers])
    numbers = f" (weight std now {now:.3g}; it would give {healthy:.3g})" if healthy > 0 else ""
    if acts <= RELU_FAMILY:
        names = "/".join(sorted(acts))
        return f"use he_normal for these {names} layers{numbers}"
    if not acts & RELU_FAMILY:
        names = "/".join(sorted(acts))
        return f"use glorot_normal or lecun_normal for these {names} layers{numbers}"
    return "use a variance-preserving init per activation: he_normal before ReLU-like units, glorot_normal before tanh/sigmoid/linear"


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and math.isfinite(a) and math.isfinite(b) else float("nan")


def _per_layer(ratio: float, steps: int) -> float:
    return ratio ** (1.0 / steps) if ratio > 0 and steps > 0 else float("nan")


def _trend(word_down: str, word_up: str, rate: float) -> str:
    if abs(rate - 1) < 0.005:
        return "stays level (x1.00 per layer)"
    return f"{word_down if rate < 1 else word_up} by x{rate:.2f} per layer"


def verdicts(layers: list[LayerStats]) -> list[Verdict]:
    """The findings for one pass: causes first (dead units, symmetry, saturation), then depth."""
    weighted = [s for s in layers if s.weighted]
    output = weighted[-1] if len(weighted) > 1 else None
    hidden = [s for s in layers if s is not output]
    chain = hidden_weighted(layers)
    found: list[Verdict] = []

    dead = [s for s in hidden if s.dead_fraction >= T.DEAD_FRACTION]
    if dead:
        worst = max(dead, key=lambda s: s.dead_fraction)
        found.append(Verdict(
            "dead_units",
            f"{len(dead)} layer(s) with dead units: in {worst.name}, {round(worst.dead_fraction * worst.units)} of "
            f"{worst.units} {worst.activation} units output 0 on every input, so no gradient flows through them "
            f"(gradient norm reaching {worst.name}: {worst.grad_norm:.3g})",
            _names(dead),
            "use a random variance-preserving init (he_normal for ReLU layers); leaky_relu or a small positive bias also keeps units alive",
        ))

    symmetric = [s for s in hidden if s.weighted and s.units > 1 and s.distinct_units < s.units and s.dead_fraction < 1.0]
    if symmetric:
        worst = min(symmetric, key=lambda s: s.distinct_units / s.units)
        found.append(Verdict(
            "symmetry",
            f"symmetry not broken: {worst.name} has only {worst.distinct_units} distinct unit(s) of {worst.units}; "
            "identical units get identical gradients and stay identical, so the layer works like "
            f"{worst.distinct_units} unit(s)",
            _names(symmetric),
            "draw the weights at random (glorot_uniform for tanh/sigmoid, he_normal for ReLU)",
        ))

    saturated = [s for s in hidden if s.saturated_fraction >= T.SATURATED_FRACTION]
    if saturated:
        worst = max(saturated, key=lambda s: s.saturated_fraction)
        found.append(Verdict(
            "saturation",
            f"{len(saturated)} layer(s) saturated: {worst.saturated_fraction:.0%} of {worst.name}'s {worst.activation} "
            f"outputs lie within {T.SATURATION_EPS} of the function's limits, where its derivative is nearly 0 "
            f"(pre-activation std {worst.pre_std:.3g})",
            _names(saturated),
            "shrink the weights: " + suggest_init([s for s in saturated if s.weighted] or chain),
        ))

    if len(weighted) >= T.MIN_LAYERS_FOR_DEPTH_VERDICTS and len(chain) >= 2:
        found.extend(_depth_verdicts(chain))

    if not found:
        rates = ""
        if len(chain) >= 2:
            steps = len(chain) - 1
            std_rate = _per_layer(_ratio(chain[-1].std, chain[0].std), steps)
            grad_rate = _per_layer(_ratio(chain[0].output_grad_norm, chain[-1].output_grad_norm), steps)
            rates = (f"; across {steps} layers the activation std changes by x{std_rate:.2f} per layer and the "
                     f"back-propagated gradient by x{grad_rate:.2f} per layer")
        found.append(Verdict("healthy", "no dead units, no symmetry, no saturation, signal preserved across layers" + rates, []))
    return found


def _depth_verdicts(chain: list[LayerStats]) -> list[Verdict]:
    first, last = chain[0], chain[-1]
    steps = len(chain) - 1
    std_ratio = _ratio(last.std, first.std)  # forward: how the signal changes going up
    grad_ratio = _ratio(first.output_grad_norm, last.output_grad_norm)  # backward: going down
    ratios = [r for r in (std_ratio, grad_ratio) if math.isfinite(r) and r > 0]
    if not ratios:  # a signal that is exactly 0 is explained by dead units / symmetry, not depth
        return []
    std_rate, grad_rate = _per_layer(std_ratio, steps), _per_layer(grad_ratio, steps)
    parts = []
    if math.isfinite(std_rate):
        parts.append(f"activation std {_trend('shrinks', 'grows', std_rate)} over {steps} layers "
                     f"({first.std:.3g} in {first.name} -> {last.std:.3g} in {last.name})")
    if math.isfinite(grad_rate):
        parts.append(f"the back-propagated gradient {_trend('shrinks', 'grows', grad_rate)} on its way down "
                     f"({last.output_grad_norm:.3g} at {last.name} -> {first.output_grad_norm:.3g} at {first.name})")
    measured = "; ".join(parts)
    if min(ratios) < T.VANISH_RATIO:
        return [Verdict(
            "vanishing_gradients",
            f"the signal vanishes with depth: {measured}",
            _names(chain),
            suggest_init(chain),
        )]
    if max(ratios) > T.EXPLODE_RATIO:
        return [Verdict(
            "exploding_gradients",
            f"the signal explodes with depth: {measured}",
            _names(chain),
            "use smaller weights: " + suggest_init(chain),
        )]
    return []
