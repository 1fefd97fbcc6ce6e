"""A diagnosis as notebook HTML: verdict badges coloured as in the browser lab, the per-layer table.

Works on the dict form (``LayerStats.to_dict()``, ``Verdict.to_dict()``), so a Diagnosis and
a run record's diagnostics summary (:func:`initlab.experiments.record.summarize`) render alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .._html import BG, MUTED, TONES, Raw, badge, box, escape, fields, number, table
from . import thresholds as T

__all__ = ["VERDICT_TONE", "VERDICT_LABEL", "verdict_badges", "verdicts_html", "layers_html", "diagnosis_html"]

# as lab.js's VERDICT_CLASS and VERDICT_LABEL
VERDICT_TONE = {"healthy": "ok", "symmetry": "bad", "dead_units": "bad", "vanishing_gradients": "warn",
                "exploding_gradients": "warn", "saturation": "warn", "non_finite": "bad",
                "attention_collapse": "warn"}
VERDICT_LABEL = {"healthy": "healthy", "symmetry": "symmetry", "dead_units": "dead units", "non_finite": "not finite",
                 "attention_collapse": "attention collapse",
                 "vanishing_gradients": "vanishing gradients", "exploding_gradients": "exploding gradients",
                 "saturation": "saturation"}
LAYER_HEADER = ("layer", "kind", "units", "activation", "distinct units", "dead", "saturated", "activation std",
                "|dL/dW|", "weight std (healthy)")


def _badge(verdict: Mapping[str, Any], hover: bool = True) -> Raw:
    code = str(verdict.get("code", ""))
    return badge(VERDICT_LABEL.get(code, code), VERDICT_TONE.get(code, ""), str(verdict.get("message", "")) if hover else "")


def verdict_badges(verdicts: Sequence[Mapping[str, Any]]) -> Raw:
    """The verdicts' badges on one line (each message on hover)."""
    return Raw(" ".join(_badge(v) for v in verdicts))


def verdicts_html(verdicts: Sequence[Mapping[str, Any]]) -> Raw:
    """One block per verdict: badge, message, fix; the left edge in the verdict's colour (as in the lab)."""
    out = []
    for v in verdicts:
        colour = TONES.get(VERDICT_TONE.get(str(v.get("code", "")), ""), "#7f7f7f")
        fix = f'<div style="color:{MUTED};margin-top:2px">Fix: {escape(v["fix"])}</div>' if v.get("fix") else ""
        out.append(f'<div style="border-left:4px solid {colour};background:{BG};border-radius:6px;padding:5px 9px;'
                   f'margin:4px 0;font-size:12px">{_badge(v, hover=False)} {escape(v.get("message", ""))}{fix}</div>')
    return Raw("".join(out))


def _pct(x: Any) -> str:
    return "-" if x is None else f"{float(x):.0%}"


def _tone(fraction: Any, threshold: float) -> str:
    if fraction is None or fraction == 0:
        return "ok"
    return "bad" if fraction >= threshold else "warn"


def _row(s: Mapping[str, Any], output: bool) -> list[Any]:
    weighted = s.get("weighted", True)
    units = s.get("units")
    distinct: Any = "-"
    dead: Any = _pct(s.get("dead_fraction"))
    sat: Any = _pct(s.get("saturated_fraction")) if s.get("saturable") else "-"  # "-": unbounded, not checked
    if weighted:
        distinct = f"{s.get('distinct_units')} of {units}"
        if not output:  # the lab colours hidden layers only
            distinct = badge(distinct, "bad" if (s.get("distinct_units") or 0) < (units or 0) else "ok")
    if not output:
        dead = badge(dead, _tone(s.get("dead_fraction"), T.DEAD_FRACTION))
        if s.get("saturable"):
            sat = badge(sat, _tone(s.get("saturated_fraction"), T.SATURATED_FRACTION))
    std = s.get("activation_std", s.get("std"))
    grad = number(s.get("grad_norm")) if weighted else "-"
    wstd = f"{number(s.get('weight_std'))} ({number(s.get('healthy_weight_std'))})" if weighted else "-"
    return [s.get("name", ""), s.get("kind", ""), units, s.get("activation") or "-", distinct, dead, sat,
            number(std), grad, wstd]


def layers_html(layers: Sequence[Mapping[str, Any]]) -> Raw:
    """The per-layer table; the last weighted layer is the output (its cells are not coloured)."""
    weighted = [i for i, s in enumerate(layers) if s.get("weighted", True)]
    output = weighted[-1] if len(weighted) > 1 else None
    return table(LAYER_HEADER, [_row(s, i == output) for i, s in enumerate(layers)], right=(2, 7, 8, 9))


def diagnosis_html(diag: Any, title: str = "Diagnosis") -> Raw:
    """A :class:`~initlab.diagnostics.Diagnosis`: verdicts, loss and rates, per-layer table."""
    rates = [("loss", number(diag.loss)), ("input shape", tuple(diag.input_shape) or "-")]
    rates += [(label, f"x{number(rate)}") for label, rate in (
        ("activation std per layer (geometric mean)", diag.activation_std_rate),
        ("gradient norm per layer, backwards", diag.gradient_rate)) if math.isfinite(rate)]  # nan below 2 hidden layers
    coverage = getattr(diag, "coverage", None)
    if coverage is not None:
        rates.append(("coverage", coverage.sentence()))
    return box(title, verdicts_html([v.to_dict() for v in diag.verdicts]), fields(rates),
               layers_html([s.to_dict() for s in diag.layers]),
               subtitle=f"{len(diag.layers)} layers")
