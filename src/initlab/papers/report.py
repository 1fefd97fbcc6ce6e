"""Write a re-run paper as ``report.html``, ``report.md``, ``results.json`` and its PNG figures.

The report states, per claim, what the paper says, what initlab measured, the criterion (fixed in
the paper's module before the run) and whether it held, then how the setup differs from the
paper's. Markdown and HTML come from the same :class:`~initlab.report.document.Document`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._validation import check_out_folder
from ..report.document import Bullets, Document, Heading, Image, Paragraph, Table
from ._base import Claim, PaperResult
from ._common import fmt

__all__ = ["save", "document", "claim_rows", "flatten", "DEFAULT_OUT", "CLAIM_COLUMNS", "result_html", "compact"]

DEFAULT_OUT = "initlab-out/paper"  # a paper's folder is DEFAULT_OUT/NAME
CLAIM_COLUMNS = ["claim", "the paper says", "initlab measured", "criterion", "reproduced"]


def flatten(measured: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested measured numbers as ``("final_loss.he.30", 0.12)`` pairs, in order."""
    pairs: list[tuple[str, Any]] = []
    for key, value in measured.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            pairs += flatten(value, name + ".")
        elif isinstance(value, list) and len(value) > 6:
            pairs.append((name, "[" + ", ".join(fmt(v) for v in value[:3]) + f", ... ({len(value)} values)]"))
        elif isinstance(value, list):
            pairs.append((name, "[" + ", ".join(fmt(v) for v in value) + "]"))
        else:
            pairs.append((name, fmt(value)))
    return pairs


def compact(value: Any) -> str:
    """A measured value in one short line: ``{2: 4, 4: 6}`` for a dict, ``[1, 2, ...]`` for a list."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        shown = [compact(v) for v in value[:6]]
        return "[" + ", ".join(shown) + (f", ... ({len(value)} values)]" if len(value) > 6 else "]")
    return fmt(value)


def _measured_text(claim: Claim) -> str:
    return "; ".join(f"{k} = {compact(v)}" for k, v in claim.measured.items())


def claim_rows(result: PaperResult) -> list[list[str]]:
    """One row per claim: id, the paper says, initlab measured, criterion, reproduced (yes/no)."""
    return [[c.id, c.statement, _measured_text(c), c.criterion, _cell(c)] for c in result.claims]


def _cell(claim: Claim) -> str:
    """yes / no for a claim the run tested; otherwise why it was not counted."""
    return ("yes" if claim.holds else "no") if claim.counted else claim.status


def summary_line(result: PaperResult) -> str:
    """``3 of 4 claims reproduced`` plus the claims not counted (inconclusive, by construction)."""
    text = f"{result.reproduced} of {result.tested} claims reproduced"
    extra = [f"{sum(c.status == s for c in result.claims)} {s}" for s in ("inconclusive", "by construction")
             if any(c.status == s for c in result.claims)]
    return text + (f" ({', '.join(extra)}, not counted)" if extra else "")


def document(result: PaperResult, images: dict[str, Image] | None = None) -> Document:
    """The report of ``result`` as plain blocks; ``images`` maps figure stems to :class:`Image` blocks."""
    scale = "quick run (smaller grid, same claims)" if result.quick else "full run"
    doc = Document(f"{result.title}: re-run by initlab")
    doc.add(
        Paragraph(f"{result.citation}"),
        Paragraph(f"**{summary_line(result)}** in a {scale}, seed "
                  f"{result.seed}, {result.elapsed_s:.1f} s. Each criterion was fixed in code before the run."),
        Heading("Claims"),
        Table(CLAIM_COLUMNS, claim_rows(result)),
    )
    notes = [f"**{c.id}**: {c.note}" for c in result.claims if c.note]
    if notes:
        doc.add(Heading("Notes on the claims", 3), Bullets(notes))
    doc.add(Heading("Setup"), Paragraph(result.setup),
            Heading("How this differs from the paper, and why"), Paragraph(result.differences))
    if images:
        doc.add(Heading("Figures"), *images.values())
    doc.add(Heading("Measured"), Table(["key", "value"], [[k, v] for k, v in flatten(result.measured)]))
    return doc


def save(result: PaperResult, out: str | Path | None = None) -> Path:
    """Write ``report.html``, ``report.md``, ``results.json`` and the paper's PNGs into ``out``.

    ``out`` defaults to ``initlab-out/paper/NAME``; returns the folder. The figures are drawn from
    ``result`` by the paper's ``figures`` (nothing is re-run).
    """
    from .._version import __version__
    from ..plots.style import save as save_figure
    from ..report.html import render_html
    from ..report.markdown import render_markdown
    from . import get

    folder = check_out_folder("--out", Path(out) if out is not None else Path(DEFAULT_OUT) / result.name)
    figures = get(result.name).figures(result)
    folder.mkdir(parents=True, exist_ok=True)
    images: dict[str, Image] = {}
    for stem, fig in figures.items():
        title = fig.get_suptitle() or stem
        save_figure(fig, folder / f"{stem}.png")
        images[stem] = Image(f"{stem}.png", title)
    doc = document(result, images)
    (folder / "results.json").write_text(json.dumps({"initlab_version": __version__, **result.to_dict()}, indent=2) + "\n")
    (folder / "report.md").write_text(render_markdown(doc))
    (folder / "report.html").write_text(render_html(doc, folder))
    return folder


def result_html(result: PaperResult, figures: bool = True) -> str:
    """A notebook's view of a result: the claims table with yes/no badges, setup, differences, figures."""
    from .. import _html
    from . import get

    rows = [[c.id, c.statement, _measured_text(c), c.criterion,
             _html.badge(_cell(c), ("ok" if c.holds else "bad") if c.counted else "warn", c.note)] for c in result.claims]
    parts: list[Any] = [
        _html.table(CLAIM_COLUMNS, rows),
        _html.fields([("setup", result.setup), ("differs from the paper", result.differences),
                      ("citation", result.citation)]),
    ]
    if figures:
        from ..plots.style import png_bytes

        for stem, fig in get(result.name).figures(result).items():
            parts.append(_html.image(png_bytes(fig), stem))
    scale = "quick" if result.quick else "full"
    return _html.box(result.title, *parts,
                     subtitle=f"{summary_line(result)}, {scale} run, seed {result.seed}")
