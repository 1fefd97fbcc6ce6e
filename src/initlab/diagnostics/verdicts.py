"""Verdicts: what the measurements of one diagnose pass mean, in plain words, with a fix.

Every verdict is decided by a measured number against a threshold of ``thresholds.py``;
activation names only choose the wording of the suggested fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from . import thresholds as T
from .chains import depth_chains, output_layer
from .types import Coverage, LayerStats, Verdict

__all__ = ["verdicts", "suggest_init", "output_verdicts"]

RELU_FAMILY = {"relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "mish", "celu", "softplus"}


def _names(layers: list[LayerStats]) -> list[str]:
    return [s.name for s in layers]


def _relu_like(s: LayerStats) -> bool:
    """He's gain sqrt(2) applies: a ReLU-family activation by name, or measured ReLU-like (see diagnose.activation_gain)."""
    return (s.activation or "linear") in RELU_FAMILY or abs(s.gain - math.sqrt(2)) < 1e-9


def suggest_init(layers: list[LayerStats]) -> str:
    """The variance-preserving init for these layers' activations, with the weight std it gives."""
    acts = {s.activation or "linear" for s in layers}
    now = _median([s.weight_std for s in layers])
    healthy = _median([s.healthy_weight_std for s in layers])
    numbers = f" (weight std now {now:.3g}; it would give {healthy:.3g})" if healthy > 0 else ""
    nonlinear = [s for s in layers if s.weighted and s.gain == 0 and s.activation_degree is not None
                 and math.isfinite(s.activation_degree)]
    if nonlinear:
        s = nonlinear[0]
        k = s.activation_degree
        assert k is not None  # kept by the filter above
        if k > 1:  # q' ~ c q^k: the fixed point repels, any other scale runs off
            why = "so any weight scale makes the activations shrink or blow up with depth"
        else:  # q' ~ c q^k with k < 1: the fixed point attracts, the input's own scale is forgotten
            why = ("so the signal is pulled to one scale set by the weights, whatever scale it enters with (the "
                   "input's own scale is not kept)")
        return (f"no init keeps the signal's scale through {s.activation}: it grows like x^{k:.2g} "
                f"(measured), {why}; normalize after each layer (LayerNorm, BatchNorm) or use an activation that "
                "grows linearly (relu, gelu)")
    if layers and all(_relu_like(s) for s in layers):
        names = "/".join(sorted(acts))
        return f"use he_normal for these {names} layers{numbers}"
    if not any(_relu_like(s) for s in layers):
        names = "/".join(sorted(acts))
        return f"use glorot_normal or lecun_normal for these {names} layers{numbers}"
    return "use a variance-preserving init per activation: he_normal before ReLU-like units, glorot_normal before tanh/sigmoid/linear"


def _layer_ratio(s: LayerStats) -> float:
    """weight std / the variance-preserving std, fan_in mode or fan_out mode, whichever is closer
    (both preserve a signal: forward with fan_in, backward with fan_out; He et al., 2015)."""
    ratios = [s.weight_std / h for h in (s.healthy_weight_std, s.healthy_weight_std_fan_out) if h > 0]
    return min(ratios, key=lambda r: abs(math.log(r)) if r > 0 else float("inf"))


def scale_ratio(layers: list[LayerStats]) -> float:
    """Median over ``layers`` of weight std / the variance-preserving std (1: already that scale)."""
    ratios = [_layer_ratio(s) for s in layers if s.weighted and s.healthy_weight_std > 0]
    return _median(ratios) if ratios else float("nan")


def _matches(ratio: float) -> bool:
    return math.isfinite(ratio) and 1 / T.SCALE_MATCH <= ratio <= T.SCALE_MATCH


def _closest(s: LayerStats) -> tuple[str, float]:
    """The variance-preserving std (fan_in or fan_out mode) closest to the layer's weight std, as ``_layer_ratio``."""
    modes = [(m, h) for m, h in (("fan_in", s.healthy_weight_std), ("fan_out", s.healthy_weight_std_fan_out)) if h > 0]
    if not modes or s.weight_std <= 0:
        return "fan_in", s.healthy_weight_std
    return min(modes, key=lambda t: abs(math.log(s.weight_std / t[1])))


def _scale_words(layers: list[LayerStats]) -> str:
    weighted = [s for s in layers if s.weighted]
    now = _median([s.weight_std for s in weighted])
    picks = [_closest(s) for s in weighted]
    healthy = _median([h for _, h in picks])
    modes = sorted({m for m, _ in picks})
    differ = any(abs(s.healthy_weight_std - s.healthy_weight_std_fan_out) > 1e-12 * s.healthy_weight_std
                 for s in weighted if s.healthy_weight_std_fan_out > 0)
    mode = "" if not differ else f" in {modes[0]} mode" if len(modes) == 1 else " in fan_in or fan_out mode (per layer)"
    return f"weight std {now:.3g}; the variance-preserving init{mode} gives {healthy:.3g}"


def _label(s: LayerStats) -> str:
    """The row's name; the root module (name "") as the model itself."""
    return s.name or f"the model itself ({s.kind})"


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and math.isfinite(a) and math.isfinite(b) else float("nan")


def _per_layer(ratio: float, steps: int) -> float:
    return ratio ** (1.0 / steps) if ratio > 0 and steps > 0 else float("nan")


def _trend(word_down: str, word_up: str, rate: float, unit: str = "layer") -> str:
    if abs(rate - 1) < 0.005:
        return f"stays level (x1.00 per {unit})"
    return f"{word_down if rate < 1 else word_up} by x{rate:.2f} per {unit}"


def _unit(chain: list[LayerStats]) -> str:
    """A chain of one layer role across repeated blocks steps block to block, a plain stack layer to layer."""
    return "block" if chain and "*" in chain[0].role else "layer"


def _stack_words(chain: list[LayerStats]) -> str:
    width = _median([s.units for s in chain])
    if _unit(chain) == "block":
        return f"{len(chain)} repeated blocks ({chain[0].role} of width {width})"
    return f"{len(chain)} hidden layers of width {width}"


def verdicts(layers: list[LayerStats], coverage: Coverage | None = None, loss: float | None = None,
             blocks: list[dict[str, Any]] | None = None, attention: list[dict[str, Any]] | None = None,
             readout: dict[str, Any] | None = None) -> list[Verdict]:
    """The findings for one pass: a non-finite pass first, then causes (dead units, symmetry,
    saturation), then depth, then the output (see :func:`output_verdicts`; ``readout`` is
    ``readout.measure_readout``'s measurement, None without class targets). Only measured rows are
    judged; ``coverage`` is stated in the healthy verdict (and a partial one keeps it from reading as
    a verdict on the whole model)."""
    found: list[Verdict] = []
    broken = [s for s in layers if not s.finite]
    if broken or (loss is not None and not math.isfinite(loss)):
        found.append(_non_finite(layers, broken, loss))
    layers = [s for s in layers if s.finite]
    weighted = [s for s in layers if s.weighted]
    output = output_layer(layers)
    # a lone activation that is one part of an expression (the tanh of an inline GELU) does not
    # block the gradient by itself: its dead or saturated share is not a layer's
    hidden = [s for s in layers if s is not output and not s.composite]
    chains = depth_chains(layers)
    chain = max(chains, key=len) if chains else []

    dead = [s for s in hidden if s.dead_fraction >= T.DEAD_FRACTION]
    if dead:
        worst = max(dead, key=lambda s: s.dead_fraction)
        found.append(Verdict(
            "dead_units",
            f"{len(dead)} layer(s) with dead units: in {worst.name}, {round(worst.dead_fraction * worst.units)} of "
            f"{worst.units} {worst.activation} units output 0 on every input, with the activation's slope exactly 0 "
            f"there, so no gradient flows through them (gradient norm reaching {worst.name}: {worst.grad_norm:.3g})",
            _names(dead),
            _dead_fix([s for s in dead if s.weighted], chain),
        ))

    symmetric = [s for s in hidden if s.weighted and s.units > 1 and s.distinct_units < s.units and s.dead_fraction < 1.0]
    if symmetric:
        worst = min(symmetric, key=lambda s: s.distinct_units / s.units)
        found.append(Verdict("symmetry", _symmetry_message(worst), _names(symmetric),
                             "draw the weights at random (glorot_uniform for tanh/sigmoid, he_normal for ReLU)"))

    saturated = [s for s in hidden if s.saturated_fraction >= T.SATURATED_FRACTION]
    if saturated:
        worst = max(saturated, key=lambda s: s.saturated_fraction)
        found.append(Verdict(
            "saturation",
            f"{len(saturated)} layer(s) saturated: {worst.saturated_fraction:.0%} of {worst.name}'s {worst.activation} "
            f"outputs sit where the activation's slope is below {T.SATURATION_SLOPE:g} of its largest, so they pass "
            f"almost no gradient back (pre-activation std {worst.pre_std:.3g})",
            _names(saturated),
            _saturation_fix([s for s in saturated if s.weighted] or chain),
        ))

    collapsed = [a for a in attention or [] if a["collapsed_fraction"] >= T.COLLAPSED_FRACTION]  # nan: not measured
    if collapsed:
        found.append(_collapse(collapsed, layers))

    if len(weighted) >= T.MIN_LAYERS_FOR_DEPTH_VERDICTS:
        found.extend(_worst_depth_verdict(chains))

    if not broken:
        explained = any(v.code in ("symmetry", "dead_units") for v in found)  # a zero net: those verdicts say why
        found.extend(v for v in output_verdicts(layers, readout) if not (explained and v.code == "dead_output"))

    if not found:
        scope = ("no verdict threshold crossed: " if coverage is None or coverage.complete else
                 "no verdict threshold crossed in the measured layers (the others are not judged): ")
        text = (scope + _healthy_numbers(hidden, chains, len(weighted), blocks or [], [s for s in layers if s.composite])
                + _attention_words(attention or []) + _readout_words(readout))
        if coverage is not None:
            text += f"; {coverage.sentence()}"
        found.append(Verdict("healthy", text, []))
    return found


def output_verdicts(layers: list[LayerStats], readout: dict[str, Any] | None = None) -> list[Verdict]:
    """The output layer at init, from measured quantities (thresholds in ``thresholds.py``).

    - ``dead_output``: the output layer's weights are all exactly 0 and so is the back-propagated
      gradient of every hidden weighted layer: at init only the output layer learns (its first
      update then lets gradients through; a deliberate choice in some inits, which the text says).
    - ``overconfident_output``: with class targets, the cross-entropy is above ``CHANCE_LOSS_RATIO``
      times chance (ln K, a uniform prediction's loss), or at least ``OVERCONFIDENT_FRACTION`` of
      the rows give one class a probability of at least ``CONFIDENT_PROB`` while the cross-entropy
      is at least chance (confident and right, as a trained net is, is no fault).
    """
    found: list[Verdict] = []
    out = output_layer(layers)
    hidden = [s for s in layers if s.weighted and s is not out]
    if out is not None and out.weight_norm == 0 and hidden and all(s.output_grad_norm == 0 for s in hidden):
        found.append(Verdict(
            "dead_output",
            f"no gradient reaches the hidden layers at init: the output layer {_label(out)}'s weights are all exactly "
            f"0, so the back-propagated gradient of all {len(hidden)} hidden weighted layer(s) is exactly 0 and the "
            f"first step trains only {_label(out)} (its gradient norm {out.grad_norm:.3g})",
            [out.name],
            f"draw {_label(out)}'s weights at random ({_scale_hint(out)}); a zero readout is deliberate in some inits "
            "(the hidden layers start learning after the first update): keep it only if that is the plan"))
    if readout is not None:
        frac, loss, chance = readout["confident_fraction"], readout["loss"], readout["chance"]
        # confident and right (a trained net: the loss far below chance) is no fault: confidence counts
        # when the cross-entropy is at least chance, i.e. the confident rows are wrong about as often as not
        if loss > T.CHANCE_LOSS_RATIO * chance or (frac >= T.OVERCONFIDENT_FRACTION and loss >= chance):
            where = f" of {_label(out)}" if out is not None else ""
            what = f"ln({readout['classes']})" if readout["kind"] == "classes" else "ln(2)"
            found.append(Verdict(
                "overconfident_output",
                f"the output is over-confident: {frac:.0%} of the {readout['rows']} rows give one class a "
                f"probability of at least {T.CONFIDENT_PROB:g}, and the cross-entropy is {loss:.3g} against chance "
                f"{what} = {chance:.3g} (x{loss / chance:.3g}); the logits{where} have std {readout['logit_std']:.3g}, "
                "so the wrongly confident rows have large losses and large gradients",
                [out.name] if out is not None else [],
                (f"scale {_label(out)}'s weights down until the logits' std is about 1 or less ({_scale_hint(out)}; "
                 "a zero or small readout is also common)") if out is not None else
                "scale the layer that produces the logits down until their std is about 1 or less"))
    return found


def _scale_hint(s: LayerStats) -> str:
    """The output layer's weight std now and 1/sqrt(fan_in) (logits of the input's scale)."""
    if s.fan_in > 0:
        return f"weight std now {s.weight_std:.3g}; 1/sqrt(fan_in) = {1 / math.sqrt(s.fan_in):.3g}"
    return f"weight std now {s.weight_std:.3g}"


def _readout_words(readout: dict[str, Any] | None) -> str:
    if readout is None:
        return ""
    what = f"ln({readout['classes']})" if readout["kind"] == "classes" else "ln(2)"
    return (f"; output: cross-entropy {readout['loss']:.3g} against chance {what} = {readout['chance']:.3g}, "
            f"{readout['confident_fraction']:.0%} of rows with one class at probability >= {T.CONFIDENT_PROB:g} "
            f"(the verdict needs {T.OVERCONFIDENT_FRACTION:.0%} with a loss at least chance, or a loss above "
            f"x{T.CHANCE_LOSS_RATIO:g} chance)")


def _rate(rate: float) -> str:
    """``x1.02``; a rate of a zero (or not finite) gradient is no number: said in words, never "xnan"."""
    return f"x{rate:.2f}" if math.isfinite(rate) else "undefined (a norm of exactly 0)"


def _collapse(collapsed: list[dict[str, Any]], layers: list[LayerStats]) -> Verdict:
    worst = max(collapsed, key=lambda a: a["collapsed_fraction"])
    inside = [s for s in layers if s.weighted and s.name.startswith(worst["name"] + ".")]
    weights = (f" (the projections in {worst['name']} have weight std "
               + ", ".join(f"{s.name.rpartition('.')[2]} {s.weight_std:.3g}" for s in inside[:4]) + ")") if inside else ""
    return Verdict(
        "attention_collapse",
        f"attention collapsed onto one key in {len(collapsed)} layer(s): in {worst['name']}, "
        f"{worst['collapsed_fraction']:.0%} of the queries give one key at least {T.COLLAPSED_WEIGHT:.0%} of their "
        f"attention (softmax entropy {worst['entropy']:.2f} of uniform; attention logits q·k/sqrt(d) with std "
        f"{worst['logit_std']:.3g}), so the softmax passes almost no gradient to the other keys",
        [a["name"] for a in collapsed],
        f"shrink the query and key projections so the logits' std is near 1 (what unit-variance queries and keys "
        f"give after the 1/sqrt(d) scaling of Vaswani et al., 2017){weights}, or normalize queries and keys "
        "(QK-LayerNorm; Zhai et al., 2023)")


def _forward_finite(s: LayerStats) -> bool:
    return all(math.isfinite(x) for x in (s.mean, s.std, s.pre_std))


def _non_finite(layers: list[LayerStats], broken: list[LayerStats], loss: float | None) -> Verdict:
    """Where the pass stopped being finite, and how the signal grew up to there."""
    if not broken:
        return Verdict("non_finite", f"the loss is {loss} although every measured layer's values are finite",
                       [], "look at the loss function and the model's output")
    forward = [s for s in broken if not _forward_finite(s)]
    if not forward:
        deepest = broken[-1]
        return Verdict("non_finite",
                       f"the backward pass is not finite: the gradient holds inf or NaN in {len(broken)} row(s), "
                       f"from {deepest.name} down, while the forward values are finite; no other verdict is given "
                       "about those rows", _names(broken),
                       "look for operations whose derivative is infinite where they are applied (sqrt or pow at 0, "
                       "division by values near 0)")
    first = forward[0]
    before = [s for s in layers[: layers.index(first)] if s.weighted and _forward_finite(s) and s.std > 0]
    growth = ""
    fix = ("an operation produced inf/NaN from finite values: look at divisions, logs, square roots and "
           "powers in the model's forward")
    upto = [s for s in layers[: layers.index(first) + 1] if s.weighted and s.healthy_weight_std > 0]
    ratio = scale_ratio(upto)
    if math.isfinite(ratio) and ratio > T.SCALE_MATCH:  # the weights are a cause: name their scale first
        fix = (f"the weights up to {first.name} are x{ratio:.3g} the variance-preserving scale, so the values grow "
               f"until they overflow: use smaller weights ({suggest_init(upto)}) or normalization "
               "(LayerNorm, BatchNorm)")
    if len(before) >= 2:
        rate = (before[-1].std / before[0].std) ** (1 / (len(before) - 1))
        growth = (f"; up to there the activation std goes {before[0].std:.3g} in {before[0].name} -> "
                  f"{before[-1].std:.3g} in {before[-1].name} (x{rate:.3g} per layer)")
        if rate > 1.5:
            superlinear = [s for s in before if s.gain == 0 and s.activation_degree is not None]
            fix = ("the values grow layer after layer until they overflow float32: "
                   + (suggest_init(superlinear) if superlinear else
                      "use smaller weights (" + suggest_init(before) + ") or normalization (LayerNorm, BatchNorm)"))
    inside = (f" (in the output of its {first.activation}; its own output is finite)"
              if first.activation and math.isfinite(first.pre_std) else "")
    return Verdict("non_finite",
                   f"the forward pass is not finite: {len(forward)} row(s) hold inf or NaN, the first at {first.name}"
                   f"{inside}{growth}; no other verdict is given about the {len(broken)} row(s) with inf or NaN "
                   "values or gradients", _names(broken), fix)


def _symmetry_message(worst: LayerStats) -> str:
    d, u = worst.distinct_units, worst.units
    zero = " (its weights are all exactly 0)" if worst.weight_norm == 0 else ""
    if worst.outgoing_compared:
        return (f"symmetry not broken: {worst.name} has only {d} distinct unit(s) of {u}{zero}; units whose incoming "
                "weights, bias and outgoing weights all agree compute the same output and receive the same gradient, "
                f"so SGD or Adam keeps them equal: the layer works like {d} unit(s)")
    return (f"symmetry: {worst.name} has only {d} distinct unit(s) of {u} by incoming weights and bias{zero}, so they "
            "compute the same output; no layer reading its output was found, so their outgoing weights were not "
            "compared and whether training separates them is not known")


def _dead_fix(layers: list[LayerStats], chain: list[LayerStats]) -> str:
    if layers and all(s.weight_norm == 0 for s in layers):
        return ("draw the weights at random (he_normal for ReLU layers): every weight is exactly 0; leaky_relu or a "
                "small positive bias also keeps units alive")
    if _matches(scale_ratio(layers)):
        deep = len(chain) >= 2
        return (f"the weights already have the variance-preserving scale ({_scale_words(layers)}), so drawing them "
                "again the same way will not revive these units: leaky_relu (its slope below 0 is not 0) or a small "
                "positive bias keeps units alive"
                + (f"; in this stack of {_stack_words(chain)}, "
                   "residual connections, normalization (BatchNorm, LayerNorm) or wider layers are the other levers" if deep else ""))
    return suggest_init(layers) + "; leaky_relu or a small positive bias also keeps units alive"


def _saturation_fix(layers: list[LayerStats]) -> str:
    """Which factor of the pre-activation scale (weight std x sqrt(fan_in) x input rms) is off the most."""
    weighted = [s for s in layers if s.weighted and s.healthy_weight_std > 0]
    if not weighted:
        return "normalize before the activation (LayerNorm, BatchNorm)"
    first = max(weighted, key=lambda s: s.input_rms)
    weight_factor = scale_ratio(weighted)  # 1: the variance-preserving weight std
    input_factor = first.input_rms  # 1: the input scale that init assumes
    if weight_factor >= input_factor and weight_factor > 1:
        return "shrink the weights: " + suggest_init(weighted)
    if input_factor > 1:
        return (f"the inputs, not the weights: {first.name} receives inputs of rms {input_factor:.3g} where a "
                f"variance-preserving init assumes about 1, while its weights are x{weight_factor:.2f} that init's "
                f"scale ({_scale_words([first])}): standardize the inputs (each feature to mean 0, std 1) or "
                "normalize before the activation (LayerNorm, BatchNorm)")
    return (f"neither the weights (x{weight_factor:.2f} the variance-preserving scale) nor the inputs (rms "
            f"{input_factor:.3g}) are too large: look at the biases ({first.name}'s bias norm {first.bias_norm:.3g}) "
            "or normalize before the activation (LayerNorm, BatchNorm)")


def _healthy_numbers(hidden: list[LayerStats], chains: list[list[LayerStats]], n_weighted: int,
                     blocks: list[dict[str, Any]], parts_of_expressions: Sequence[LayerStats] = ()) -> str:
    """What was measured, with the numbers (healthy: no threshold crossed)."""
    rows = [s for s in hidden if s.weighted] or hidden
    units = sum(s.units for s in rows)
    # a model of one weighted layer: that layer is judged, but it is the output, not a hidden layer
    word = "units" if n_weighted == 1 else "hidden units"
    parts = [f"{sum(s.distinct_units for s in rows)} of {units} {word} distinct"]
    unread = [_label(s) for s in rows if s.weighted and not s.outgoing_compared]
    if unread:
        where = ", ".join(unread) if len(unread) <= 3 else f"{len(unread)} layers"
        parts[0] += (f" (by incoming weights and bias only in {where}: no layer reading "
                     f"{'its' if len(unread) == 1 else 'their'} output was found)")
    worst = max(hidden, key=lambda s: s.dead_fraction)
    if worst.dead_fraction == 0:
        parts.append("no unit dead")
    else:
        parts.append(f"{round(worst.dead_fraction * worst.units)} of {worst.units} units dead in {worst.name} "
                     f"(the verdict needs {T.DEAD_FRACTION:.0%})")
    saturable = [s for s in hidden if s.saturable]
    if saturable:
        top = max(saturable, key=lambda s: s.saturated_fraction)
        parts.append(f"{top.saturated_fraction:.0%} of {top.name}'s outputs saturated "
                     f"(the verdict needs {T.SATURATED_FRACTION:.0%})")
    else:
        acts = sorted({s.activation for s in hidden if s.activation})
        parts.append(f"saturation not checked ({'/'.join(acts)} {'is' if len(acts) == 1 else 'are'} not bounded on "
                      "both sides)" if acts else "saturation not checked (no activation)")
    text = ", ".join(parts)
    if n_weighted >= T.MIN_LAYERS_FOR_DEPTH_VERDICTS and chains:
        spans = []
        for chain in chains:
            steps = len(chain) - 1
            std_rate = _per_layer(_ratio(chain[-1].std, chain[0].std), steps)
            grad_rate = _per_layer(_ratio(chain[0].output_grad_norm, chain[-1].output_grad_norm), steps)
            spans.append((chain, steps, std_rate, grad_rate))
        if len(spans) == 1:
            chain, steps, std_rate, grad_rate = spans[0]
            span = (f"from {chain[0].name} to {chain[-1].name}" if steps == 1 else
                    f"from {chain[0].name} to {chain[-1].name} ({steps} steps)")
            text += (f"; {span} the activation std changes by {_rate(std_rate)} per layer and the "
                     f"back-propagated gradient by {_rate(grad_rate)} per layer")
        else:
            far = max(spans, key=lambda t: max(abs(math.log(r)) if r > 0 and math.isfinite(r) else 0 for r in t[2:]))
            chain, steps, std_rate, grad_rate = far
            text += (f"; per layer role across blocks ({len(spans)} roles, each compared only with itself), the "
                     f"largest change is in {chain[0].role}: activation std {_rate(std_rate)} and back-propagated "
                     f"gradient {_rate(grad_rate)} per block over {steps} step{'s' if steps > 1 else ''}")
        text += f" (the verdicts need a total change below x{T.VANISH_RATIO:g} or above x{T.EXPLODE_RATIO:g})"
    text += _stream_words(blocks)
    if parts_of_expressions:
        names = ", ".join(s.name for s in parts_of_expressions[:3]) + (", ..." if len(parts_of_expressions) > 3 else "")
        text += (f"; {len(parts_of_expressions)} activation call(s) inside expressions not judged ({names}: their "
                 "output is multiplied by another tensor, as the tanh of an inline GELU)")
    embeddings = [s for s in hidden if s.kind == "Embedding"]
    if embeddings and blocks:
        text += ("; embedding output std " + ", ".join(f"{s.name} {s.std:.3g}" for s in embeddings)
                 + f" against the stream's {blocks[0]['input_std']:.3g} into {blocks[0]['name']}")
    return text


def _stream_words(blocks: list[dict[str, Any]]) -> str:
    """The std of the stream into the first block and after each block, per group of blocks (residual or
    not: a plain stack of repeated blocks hands its output on too, so the text does not say "residual")."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for b in blocks:
        groups.setdefault(b["group"], []).append(b)
    words = []
    for group, items in groups.items():
        if len(items) < 2:
            continue
        first, last = items[0], items[-1]
        words.append(f"block output std (the stream each block hands to the next) across {group}.{first['index']}-{last['index']}: "
                     f"{first['input_std']:.3g} into the first, "
                     f"{first['output_std']:.3g} after the first block, {last['output_std']:.3g} after the last "
                     f"({_rate(_ratio(last['output_std'], first['output_std']))})")
    return "; " + "; ".join(words) if words else ""


def _attention_words(attention: list[dict[str, Any]]) -> str:
    """Softmax entropy (1 = uniform) and logit scale over the attention layers measured."""
    if not attention:
        return ""
    ent = [a["entropy"] for a in attention if math.isfinite(a["entropy"])]
    std = [a["logit_std"] for a in attention]
    collapsed = [a["collapsed_fraction"] for a in attention if math.isfinite(a["collapsed_fraction"])]
    if not ent:
        return (f"; attention in {len(attention)} layer(s): logit std {min(std):.3g}-{max(std):.3g}, entropy not "
                "measured (no query had 2 keys or more to attend to)")
    return (f"; attention in {len(attention)} layer(s): softmax entropy {min(ent):.2f}-{max(ent):.2f} of uniform, "
            f"logit std {min(std):.3g}-{max(std):.3g}, at most {max(collapsed):.0%} of queries with one key taking "
            f">= {T.COLLAPSED_WEIGHT:.0%} of the weight")


def _worst_depth_verdict(chains: list[list[LayerStats]]) -> list[Verdict]:
    """The depth verdict of the chain whose signal changes the most (one verdict at most)."""
    found = []
    for chain in chains:
        if len(chain) < 2:
            continue
        for v in _depth_verdicts(chain):
            if len(chains) > 1 or "*" in chain[0].role:
                v.message = f"in {chain[0].role} across {len(chain)} blocks, " + v.message
            extreme = max(abs(math.log(r)) for r in (_ratio(chain[-1].std, chain[0].std),
                                                    _ratio(chain[0].output_grad_norm, chain[-1].output_grad_norm))
                          if math.isfinite(r) and r > 0)
            found.append((extreme, v))
    if not found:
        return []
    return [max(found, key=lambda t: t[0])[1]]


def _depth_verdicts(chain: list[LayerStats]) -> list[Verdict]:
    first, last = chain[0], chain[-1]
    steps, unit = len(chain) - 1, _unit(chain)
    std_ratio = _ratio(last.std, first.std)  # forward: how the signal changes going up
    grad_ratio = _ratio(first.output_grad_norm, last.output_grad_norm)  # backward: going down
    ratios = [r for r in (std_ratio, grad_ratio) if math.isfinite(r) and r > 0]
    if not ratios:  # a signal that is exactly 0 is explained by dead units / symmetry, not depth
        return []
    std_rate, grad_rate = _per_layer(std_ratio, steps), _per_layer(grad_ratio, steps)
    parts = []
    if math.isfinite(std_rate):
        parts.append(f"activation std {_trend('shrinks', 'grows', std_rate, unit)} over {steps} {unit}s "
                     f"({first.std:.3g} in {first.name} -> {last.std:.3g} in {last.name})")
    if math.isfinite(grad_rate):
        parts.append(f"the back-propagated gradient {_trend('shrinks', 'grows', grad_rate, unit)} on its way down "
                     f"({last.output_grad_norm:.3g} at {last.name} -> {first.output_grad_norm:.3g} at {first.name})")
    measured = "; ".join(parts)

    def what(crossed: Callable[[float], bool], verb: str) -> str:  # which measured ratio crossed the threshold names the subject
        fwd, bwd = crossed(std_ratio), crossed(grad_ratio)
        if fwd and bwd:
            return f"the activation std (x{std_ratio:.3g}) and the back-propagated gradient (x{grad_ratio:.3g}) {verb}"
        return ("the activation std" if fwd else "the back-propagated gradient") + f" {verb}es"

    if min(ratios) < T.VANISH_RATIO:
        who = what(lambda r: math.isfinite(r) and 0 < r < T.VANISH_RATIO, "vanish")
        return [Verdict("vanishing_gradients", f"{who} with depth: {measured}", _names(chain),
                        _depth_fix(chain, ""))]
    if max(ratios) > T.EXPLODE_RATIO:
        who = what(lambda r: math.isfinite(r) and r > T.EXPLODE_RATIO, "explode")
        return [Verdict("exploding_gradients", f"{who} with depth: {measured}", _names(chain),
                        _depth_fix(chain, "use smaller weights: "))]
    return []


def _depth_fix(chain: list[LayerStats], lead: str) -> str:
    """The init when the weights are off the variance-preserving scale; else the levers left."""
    if not _matches(scale_ratio(chain)):
        return lead + suggest_init(chain)
    return (f"the weights already have the variance-preserving scale ({_scale_words(chain)}), so another init of "
            f"this kind will not change this: with {_stack_words(chain)}, use residual "
            "connections or normalization (BatchNorm, LayerNorm), or wider layers (at a fixed init the signal's "
            "layer-to-layer fluctuations compound with depth/width; Hanin & Rolnick, 2018)")
