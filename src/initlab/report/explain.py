"""The report's words, built from the measured numbers of results.json entries.

Every sentence here is computed from an entry's fields (accuracies, ``summary``,
``diagnostics``); none looks at an experiment's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    "symmetry": "symmetry (identical hidden units)",
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


def measured_sentences(e: Entry) -> list[str]:
    """One line per measurement, in the learner's words, with the numbers."""
    s = e["summary"]
    units = s["hidden_units"]
    layer = s["grad_layer"]
    hidden = e["diagnostics"]["layers"][:-1] or e["diagnostics"]["layers"]
    where = "the hidden layer" if len(hidden) == 1 else f"the {len(hidden)} hidden layers together"
    out = [
        f"Symmetry: {where} has {s['distinct_units_init']} distinct of {units} units at step 0 and {s['distinct_units']} of {units} at the end (units whose incoming weights "
        f"and bias agree count as one).",
        f"Dead units (output exactly 0 on every training input): {s['dead_units_init']} of {units} at step 0, "
        f"{s['dead_units']} of {units} at the end.",
    ]
    reasons = []
    if s["grad_norm_init"] == 0.0:
        if s["next_weights_zero_init"]:
            reasons.append("the weights of the layer above start at 0, so no error signal flows back to it")
        if s["dead_units_init"] == units:
            relu = " and ReLU passes no gradient where it outputs 0" if e["activation"] == "relu" else ""
            reasons.append(f"every unit outputs 0 on every input{relu}")
    why = f" ({'; '.join(reasons)})" if reasons else ""
    out.append(
        f"Gradient reaching {layer} (norm of dLoss/dW on the training data): {fmt_grad(s['grad_norm_init'])} "
        f"at step 0{why}; {fmt_grad(s['grad_norm_end'])} at the end."
    )
    chance = e["chance_accuracy"]
    acc = f"Accuracy: training {_acc(e['train_accuracy'])}, validation {_acc(e['val_accuracy'])}"
    acc += f" (chance level: {chance:.2f}, the majority class's share)"
    if s["one_class"]:
        acc += "; the net predicts the same class for every point"
    out.append(acc + ".")
    for v in e["diagnostics"]["verdicts"]:
        fix = f" Fix: {v['fix']}." if v.get("fix") else ""
        out.append(f"Diagnosis at the end, `{v['code']}`: {v['message']}.{fix}")
    return out


def _matches(e: Entry, claim: dict[str, str]) -> bool:
    return all(e.get(k) == claim[k] for k in ("initializer", "bias_initializer", "activation"))


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
                    text += (" The units are identical too, but that is not what stops learning: they are dead, "
                             "so not even the symmetric update arrives.")
                if (claim["code"] == "vanishing_gradients" and s["grad_norm_end"] > 0 and s["grad_norm_init"] == 0
                        and s["distinct_units"] < s["hidden_units"]):
                    text += (" The gradient is not vanishing with depth (there is one hidden layer): it is exactly 0 "
                             "at step 0 and non-zero later, but it is the same for every unit, so the units move "
                             "together and never separate.")
            paragraphs.append(text)
    zero_start = [e for e in matched if e["summary"]["grad_norm_init"] == 0.0 and e["summary"]["next_weights_zero_init"]]
    if len(zero_start) >= 2:
        names = " and ".join(f"`{e['name']}`" for e in zero_start)
        paragraphs.append(
            f"For {names} alike, the gradient reaching the hidden layer at step 0 is exactly 0, whatever the activation: "
            "the output weights start at 0, so the error signal is multiplied by 0 on its way back. Only the output "
            "layer learns at the first step.")
    return paragraphs
