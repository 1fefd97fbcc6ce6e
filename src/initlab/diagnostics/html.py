"""The self-contained ``report.html`` of ``initlab doctor`` (figures inline as base64 PNG)."""

from __future__ import annotations

import base64
import html
import io

from matplotlib.figure import Figure

from .diagnose import Diagnosis
from .doctor import DoctorResult
from .figures import depth_profile, layer_histograms
from .table import COLUMNS

__all__ = ["render_html", "figure_data_uri"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:nth-child(-n+4), td:nth-child(-n+4) { text-align: left; }
.verdict { margin: 0.4em 0; padding: 0.5em 0.8em; border-left: 4px solid #d62728; background: #fafafa; }
.verdict.healthy { border-color: #2ca02c; }
code { background: #f3f3f3; padding: 0 3px; }
img { max-width: 100%; }
"""


def figure_data_uri(fig: Figure) -> str:
    """``data:image/png;base64,...`` of a figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _verdicts(diag: Diagnosis, label: str) -> str:
    items = []
    for v in diag.verdicts:
        fix = f"<br><b>fix:</b> {html.escape(v.fix)}" if v.fix else ""
        cls = "verdict healthy" if v.code == "healthy" else "verdict"
        items.append(f'<div class="{cls}"><b>{html.escape(v.code)}</b>: {html.escape(v.message)}{fix}</div>')
    return f"<h3>Verdicts {html.escape(label)}</h3>" + "".join(items)


def _table(before: Diagnosis, after: Diagnosis | None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("layer", "kind", "units", "act", *COLUMNS))
    others = {s.name: s for s in after.layers} if after is not None else {}
    rows = []
    for s in before.layers:
        cells = [s.name, s.kind, str(s.units), s.activation or "-"]
        for cell in COLUMNS.values():
            text = cell(s)
            if after is not None:
                other = others.get(s.name)
                text = f"{text} → {cell(other) if other else '?'}"
            cells.append(text)
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_html(result: DoctorResult) -> str:
    """The whole report as one HTML string (no external files)."""
    diags = {"as built": result.before}
    if result.after is not None:
        diags[result.init or "after"] = result.after
    title = f"initlab doctor: {result.target}"
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Input batch of shape <code>{result.input_shape}</code>; one forward and one backward pass "
        "(surrogate loss: outputs projected on a fixed random direction)."
        + (f" Re-initialized with <code>{html.escape(result.init)}</code> for comparison." if result.init else "")
        + "</p>",
    ]
    for label, diag in diags.items():
        sections.append(_verdicts(diag, label))
    sections.append("<h2>Per layer</h2>" + (
        "<p>Each cell reads <i>as built → re-initialized</i>.</p>" if result.after is not None else ""))
    sections.append(_table(result.before, result.after))
    sections.append(
        "<p><i>std x</i>: activation std over the previous hidden layer's; <i>dead</i>: units at 0 for every input; "
        "<i>sat</i>: tanh/sigmoid outputs near their limits; <i>|dL/dW|</i>: weight-gradient norm; "
        "<i>|dL/dy|</i>: norm of the gradient reaching the layer's output; <i>healthy</i>: the weight std "
        "gain/sqrt(fan_in) a variance-preserving init gives for the following activation; "
        "<i>distinct</i>: distinct units (symmetry).</p>")
    sections.append("<h2>Signal across depth</h2>"
                    f'<img alt="depth profile" src="{figure_data_uri(depth_profile(diags))}">')
    sections.append("<h2>Histograms per layer</h2>"
                    f'<img alt="histograms" src="{figure_data_uri(layer_histograms(diags))}">')
    body = "\n".join(sections)
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")
