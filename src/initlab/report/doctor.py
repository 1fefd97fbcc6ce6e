"""``initlab doctor``'s files: ``report.json`` and a self-contained ``report.html``.

Here rather than in ``diagnostics`` so that diagnostics (measurements) never imports report
(documents): report reads diagnostics, not the other way round.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from matplotlib.figure import Figure

from .._validation import check_out_folder
from ..diagnostics import thresholds
from ..diagnostics.doctor import DoctorResult
from ..diagnostics.figures import depth_profile, layer_histograms
from ..diagnostics.table import COLUMNS, layer_cells
from ..diagnostics.types import Diagnosis
from .document import Block, Bullets, Document, Heading, Image, Paragraph, Table
from .html import render_html as render_document

__all__ = ["render_html", "doctor_document", "figure_png", "write_report"]


def figure_png(fig: Figure) -> bytes:
    """The PNG bytes of a figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=100)
    return buffer.getvalue()


def _verdicts(diag: Diagnosis) -> Bullets:
    return Bullets([f"**{v.code}**: {v.message}" + (f" **Fix:** {v.fix}" if v.fix else "") for v in diag.verdicts])


def _table(before: Diagnosis, after: Diagnosis | None) -> Table:
    rows = [[s.name, s.kind, str(s.units), s.activation or "-", *cells]
            for s, cells in layer_cells(before, after, arrow="→")]
    return Table(["layer", "kind", "units", "act", *COLUMNS], rows)


def _coverage(diag: Diagnosis) -> list[Block]:
    """What was measured, and each parameter that was not, with why."""
    if diag.coverage is None:
        return []
    blocks: list[Block] = [Heading("Coverage"), Paragraph(
        f"Diagnose {diag.coverage.sentence().split('; not measured')[0]}. A verdict is only given about measured "
        "layers.")]
    if diag.coverage.unattributed:
        rows = [[u["name"], "x".join(map(str, u["shape"])) or "scalar", f"{u['numel']:,}", u["reason"],
                 "-" if u["grad_norm"] is None else f"{u['grad_norm']:.3g}"] for u in diag.coverage.unattributed]
        blocks.append(Table(["parameter", "shape", "values", "why not measured", "|dL/dp|"], rows))
    if diag.coverage.unmeasured_computations:  # a softmax that may be attention, not measured as such
        blocks.append(Paragraph("Computations seen but not measured:"))
        blocks.append(Bullets([f"{c['op']} over {tuple(c['shape'])} in {c['name']}: {c['reason']}"
                               for c in diag.coverage.unmeasured_computations]))
    return blocks


def _transformer(diag: Diagnosis) -> list[Block]:
    """The residual stream after each block, and attention's logit scale and entropy, per layer."""
    out: list[Block] = []
    if diag.blocks:
        rows = [[b["name"], f"{b['input_std']:.3g}", f"{b['output_std']:.3g}", f"{b['output_grad_norm']:.3g}"]
                for b in diag.blocks]
        out += [Heading("Blocks (the stream each one hands to the next)"), Table(["block", "std in", "std out", "|dL/dout|"], rows)]
    if diag.attention:
        rows = [[a["name"], str(a["heads"]), str(a["keys"]), f"{a['logit_std']:.3g}", f"{a['entropy']:.3f}",
                 f"{a['max_weight']:.3f}", f"{a['collapsed_fraction']:.0%}"] for a in diag.attention]
        out += [Heading("Attention"), Table(["layer", "heads", "keys", "logit std", "entropy", "largest weight",
                                             "collapsed"], rows),
                Paragraph("**logit std**: std of q·k/sqrt(d) over the keys each query may attend to; **entropy**: of "
                          "the softmax over those keys, divided by log(keys): 1 is uniform, 0 one key; **largest "
                          "weight**: mean over queries of the largest attention weight; **collapsed**: queries whose "
                          "largest weight is at least 0.9.")]
    return out


def doctor_document(result: DoctorResult) -> Document:
    """The doctor report as plain blocks: verdicts, the per-layer table, the figures."""
    diags = {"as built": result.before}
    if result.after is not None:
        diags[result.init or "after"] = result.after
    doc = Document(f"initlab doctor: {result.target}")
    doc.add(Paragraph(
        f"Input batch of shape `{result.input_shape}`; one forward and one backward pass "
        "(surrogate loss: outputs projected on a fixed random direction)."
        + (f" Re-initialized with `{result.init}` for comparison." if result.init else "")))
    for label, diag in diags.items():
        doc.add(Heading(f"Verdicts, {label}", 3), _verdicts(diag))
    doc.add(*_coverage(result.before))
    doc.add(*_transformer(result.before))
    doc.add(Heading("Per layer"))
    if result.after is not None:
        doc.add(Paragraph("Each cell reads: as built → re-initialized."))
    doc.add(_table(result.before, result.after), Paragraph(
        "**std x**: activation std over the previous hidden layer's; **dead**: units whose output is exactly 0, "
        "where the activation's slope is exactly 0, for every input; **sat**: outputs where the slope of an "
        "activation bounded on both sides is below "
        f"{thresholds.SATURATION_SLOPE:g} of its largest (- for an activation unbounded on a side); **|dL/dW|**: "
        "weight-gradient norm; **|dL/dy|**: norm of the gradient reaching the layer's output; **healthy**: the "
        "weight std gain/sqrt(fan_in) a variance-preserving init gives for the following activation; "
        "**distinct**: distinct units (units whose incoming weights, bias and outgoing weights all agree count "
        "once)."))
    doc.add(Heading("Signal across depth"),
            Image("depth.png", "Activation std and back-propagated gradient norm per layer.",
                  png=figure_png(depth_profile(diags))),
            Heading("Histograms per layer"),
            Image("histograms.png", "Activations and back-propagated gradients per layer (Glorot & Bengio 2010).",
                  png=figure_png(layer_histograms(diags))))
    return doc


def render_html(result: DoctorResult) -> str:
    """The whole report as one HTML string (no external files)."""
    return render_document(doctor_document(result), ".")


def write_report(result: DoctorResult, out: str | Path) -> dict[str, Path]:
    """Write ``out/report.json`` and a self-contained ``out/report.html``; returns their paths."""
    out = check_out_folder("out", out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    paths["html"].write_text(render_html(result))
    return paths
