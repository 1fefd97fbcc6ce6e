"""The report's words, built from the measured numbers of results.json entries.

Every sentence here is computed from an entry's fields (accuracies, ``summary``,
``diagnostics``); none looks at an experiment's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..diagnostics.symmetry import ROUNDING_SPLIT, gradient_rounding_scale

DIAGNOSE_ROWS = 256  # the training rows a run's diagnoses look at (initlab.experiments.execute.DIAGNOSE_ROWS)

__all__ = ["TABLE_COLUMNS", "table_row", "measured_sentences", "notebook_comparison", "NOTEBOOK_CLAIMS", "fmt_grad"]

Entry = dict[str, Any]

TABLE_COLUMNS = [
    "experiment", "activation", "initializer", "train acc", "val acc",
    "distinct hidden units (end)", "dead hidden units (end)",
    "grad reaching hidden layer, step 0", "... at the end", "verdict (from the measurements)",
]

# What the classic Keras notebook's table says about its two zero-initialized runs, keyed by
# the configuration it describes (weights and biases zero, this hidden activation).
NOTEBOOK_CLAIMS = [
    {"initializer": "zeros", "bias_initializer": "zeros", "activation": "relu",
     "claim": "failed to break symmetry", "code": "symmetry"},
    {"initializer": "zeros", "bias_initializer": "zeros", "activation": "sigmoid",
     "claim": "suffered from vanishing gradients", "code": "vanishing_gradients"},
]

_CODE_WORDS = {
    "symmetry": "symmetry (interchangeable hidden units)",
    "dead_units": "dead units (outputs 0 on every input)",
    "vanishing_gradients": "vanishing gradients",
    "exploding_gradients": "exploding gradients",
    "saturation": "saturated units",
    "healthy": "nothing wrong",
}


def fmt_grad(value: float | None) -> str:
    """A gradient norm: exactly ``0`` when it is zero, else 3 significant digits."""
    if value is None:
        return "n/a"
    return "0" if value == 0.0 else f"{value:.3g}"


def _acc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table_row(e: Entry) -> list[str]:
    s = e["summary"]
    return [
        e["name"], e["activation"], e["initializer"], _acc(e["train_accuracy"]), _acc(e["val_accuracy"]),
        f"{s['distinct_units']} of {s['hidden_units']}", f"{s['dead_units']} of {s['hidden_units']}",
        fmt_grad(s["grad_norm_init"]), fmt_grad(s["grad_norm_end"]), s["verdict"],
    ]


def _layers(e: Entry, key: str) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = (e.get(key) or {}).get("layers", [])
    return layers


def _weight_norms(e: Entry) -> str | None:
    """``hidden1 W 0 -> 0, b 0 -> 0; output W ...``: each weighted layer's weight and bias norms at both ends."""
    start, end = _layers(e, "diagnostics_init"), {d["name"]: d for d in _layers(e, "diagnostics")}
    rows: list[str] = []
    for a in start:
        b = end.get(a["name"])
        if b is None or "weight_norm" not in a or "weight_norm" not in b or not a.get("weighted", True):
            return None if not rows else "; ".join(rows)
        rows.append(f"{a['name']} weights {fmt_grad(a['weight_norm'])} -> {fmt_grad(b['weight_norm'])}, "
                    f"bias {fmt_grad(a['bias_norm'])} -> {fmt_grad(b['bias_norm'])}")
    return "; ".join(rows) or None


def _layer_above(e: Entry, name: str) -> str | None:
    names = [d["name"] for d in _layers(e, "diagnostics")]
    return names[names.index(name) + 1] if name in names and names.index(name) + 1 < len(names) else None


def _split_sentence(s: dict[str, Any]) -> str:
    """Units that started identical and ended distinct were split by rounding: say so (empty otherwise)."""
    if s["distinct_units_init"] >= s["hidden_units"] or s["distinct_units"] <= s["distinct_units_init"]:
        return ""
    return (f" The units started identical and ended as {s['distinct_units']} distinct: the init did not break the "
            f"symmetry; {ROUNDING_SPLIT}.")


def measured_sentences(e: Entry) -> list[str]:
    """One line per measurement, in the learner's words, with the numbers."""
    s = e["summary"]
    units = s["hidden_units"]
    layer = s["grad_layer"]
    n_hidden = s.get("hidden_layers", 1)
    where = "the hidden layer has" if n_hidden == 1 else f"the {n_hidden} hidden layers together have"
    out = [
        f"Symmetry: {where} {s['distinct_units_init']} distinct of {units} units at step 0 and "
        f"{s['distinct_units']} of {units} at the end (units whose incoming weights, bias and outgoing weights all "
        "agree are interchangeable and count as one)." + _split_sentence(s),
        f"Dead units (output exactly 0, where the activation's slope is exactly 0, on every training input): "
        f"{s['dead_units_init']} of {units} at step 0, {s['dead_units']} of {units} at the end.",
    ]
    reasons = []
    if s["grad_norm_init"] == 0.0:
        if s["next_weights_zero_init"]:
            reasons.append("the weights of the layer above start at 0, so no error signal flows back to it")
        if s["dead_units_init"] == units:
            reasons.append("every unit is dead: output 0 and slope 0 on every input")
    why = f" ({'; '.join(reasons)})" if reasons else ""
    why_end = ""
    above = _layer_above(e, layer)
    if s["grad_norm_end"] == 0.0 and above is not None and above in s.get("weights_zero_end", []):
        why_end = f" (the weights of {above} are still exactly 0)"
    out.append(
        f"Gradient reaching {layer} (norm of dLoss/dW on the training data): {fmt_grad(s['grad_norm_init'])} "
        f"at step 0{why}; {fmt_grad(s['grad_norm_end'])} at the end{why_end}."
    )
    norms = _weight_norms(e)
    if norms:
        text = f"Weight and bias norms, step 0 -> end: {norms}."
        if s.get("stuck_layers"):
            stuck = s["stuck_layers"]
            text += (f" Stuck: {', '.join(stuck)} {'has' if len(stuck) == 1 else 'have'} weights and bias exactly 0 at "
                     "both ends and a weight gradient of exactly 0 at both ends.")
        out.append(text)
    chance = e["chance_accuracy"]
    acc = f"Accuracy: training {_acc(e['train_accuracy'])}, validation {_acc(e['val_accuracy'])}"
    acc += f" (chance level: {chance:.2f}, the majority class's share)"
    if s["one_class"]:
        acc += "; the net predicts the same class for every point"
    if s.get("train_at_chance"):
        acc += (f"; training loss {s['train_loss']:.3g} against {s['chance_loss']:.3g} for predicting the class "
                "shares: the net has not learned")
    out.append(acc + ".")
    if _one_unit_at_chance(s):
        out.append(_one_unit_sentence(e))
    for v in e["diagnostics"]["verdicts"]:
        fix = f" Fix: {v['fix']}." if v.get("fix") else ""
        out.append(f"Diagnosis at the end, `{v['code']}`: {v['message']}.{fix}")
    return out


def _one_unit_at_chance(s: dict[str, Any]) -> bool:
    return (s.get("distinct_units_first") == 1 and s["distinct_units"] < s["hidden_units"] and s["at_chance"]
            and s["dead_units"] < s["hidden_units"] and not s.get("stuck_layers"))


def _one_unit_sentence(e: Entry) -> str:
    s = e["summary"]
    shape = "a straight boundary at best" if s.get("hidden_layers", 1) == 1 else "straight, parallel boundaries at best"
    return (f"With its first hidden layer acting as 1 unit, the net is effectively a one-unit net ({shape}). "
            "A one-unit net can still split the points with a straight line, so symmetry alone does not force "
            f"chance-level accuracy: after {e['epochs']} epochs this one had not yet learned even that.")


def _matches(e: Entry, claim: dict[str, str]) -> bool:
    return all(e.get(k) == claim[k] for k in ("initializer", "bias_initializer", "activation"))


def _step0_gradients(e: Entry) -> str | None:
    """The parameters whose gradient at step 0 is above float32 rounding, from ``diagnostics_init`` (None if not
    recorded); a non-zero gradient within rounding (:func:`gradient_rounding_scale`) is named as such."""
    layers = _layers(e, "diagnostics_init")
    if not layers or any("bias_grad_norm" not in d for d in layers):
        return None
    rows = min(int(e.get("n_train") or DIAGNOSE_ROWS), DIAGNOSE_ROWS)
    moving, noise = [], []
    for d in layers:
        scales = gradient_rounding_scale(d, rows)
        parts = []
        for what, g, scale in (("weights", d["grad_norm"], scales[0]), ("bias", d["bias_grad_norm"], scales[1])):
            if g > scale:
                parts.append(what)
            elif g > 0:
                noise.append(f"{d['name']} {what} {g:.2g} (rounding scale of its sum {scale:.2g})")
        if parts:
            moving.append(f"{d['name']} {' and '.join(parts)}")
    text = ", ".join(moving) if moving else "nothing"
    if noise:
        text += (" (non-zero but within float32 rounding, so indistinguishable from 0: " + ", ".join(noise) + ")")
    return text


def notebook_comparison(entries: Sequence[Entry]) -> list[str]:
    """Paragraphs setting the notebook's claims against what was measured (empty if no run matches)."""
    paragraphs = []
    matched = []
    for claim in NOTEBOOK_CLAIMS:
        for e in entries:
            if not _matches(e, claim):
                continue
            matched.append(e)
            s = e["summary"]
            codes = [c for c in dict.fromkeys(s["codes_init"] + s["codes"])]
            measured = ", ".join(_CODE_WORDS.get(c, c) for c in codes)
            text = (f"The notebook says the zero-initialized {claim['activation']} net (`{e['name']}` here) "
                    f"\"{claim['claim']}\". initlab measured {measured}.")
            facts = [f"{s['distinct_units']} distinct of {s['hidden_units']} hidden units at the end",
                     f"{s['dead_units']} of {s['hidden_units']} dead",
                     f"gradient reaching {s['grad_layer']} {fmt_grad(s['grad_norm_init'])} at step 0 and "
                     f"{fmt_grad(s['grad_norm_end'])} at the end"]
            text += f" Numbers: {'; '.join(facts)}. "
            if claim["code"] in codes:
                text += "The measurement agrees with the notebook."
            else:
                main = next((c for c in codes if c != "healthy"), None)
                instead = _CODE_WORDS.get(main, main) if main else "no problem at all"
                text += (f"The notebook blamed {_CODE_WORDS[claim['code']]}; the measurement says {instead} "
                         f"(no `{claim['code']}` verdict).")
                if claim["code"] == "symmetry" and s["dead_units"] == s["hidden_units"] and s["distinct_units"] < s["hidden_units"]:
                    text += (" The units are interchangeable too (same incoming and outgoing weights), but that is not "
                             f"what stops learning: they are dead, and the gradient reaching {s['grad_layer']} is "
                             f"{fmt_grad(s['grad_norm_end'])} at the end, so not even the symmetric update arrives.")
                if (claim["code"] == "vanishing_gradients" and s["grad_norm_end"] > 0 and s["grad_norm_init"] == 0
                        and s["distinct_units"] < s["hidden_units"]):
                    depth = (" There is one hidden layer, so there is no depth for a gradient to vanish across."
                             if s.get("hidden_layers", 1) == 1 else "")
                    text += (f"{depth} The gradient reaching {s['grad_layer']} is exactly 0 at step 0 and "
                             f"{fmt_grad(s['grad_norm_end'])} at the end, yet the units are still interchangeable "
                             f"after {e['epochs']} epochs ({s['distinct_units']} distinct of {s['hidden_units']}): "
                             "they moved together.")
            if _one_unit_at_chance(s):
                text += " " + _one_unit_sentence(e)
            paragraphs.append(text)
    zero_start = [e for e in matched if e["summary"]["grad_norm_init"] == 0.0 and e["summary"]["next_weights_zero_init"]]
    if len(zero_start) >= 2:
        names = " and ".join(f"`{e['name']}`" for e in zero_start)
        text = (f"For {names} alike, the gradient reaching {zero_start[0]['summary']['grad_layer']} at step 0 is exactly "
                "0 and the weights of the layer above it start at 0: the error signal is multiplied by those zero "
                "weights on its way back.")
        moving = [(e["name"], _step0_gradients(e)) for e in zero_start]
        if all(m is not None for _, m in moving):
            text += " At step 0 the only parameters with a gradient above float32 rounding are: " + "; ".join(
                f"in `{name}`, {m}" for name, m in moving) + "."
        paragraphs.append(text)
    return paragraphs
