"""Runs and sweeps as notebook HTML: a record's setup and results, its verdicts, its figures inline.

Figures are the report's own (:mod:`initlab.experiments.outputs`), drawn in initlab's style and
inlined as base64 PNGs at a lower dpi than the report's files, so one output stays small.
"""

from __future__ import annotations

from typing import Any

from .._html import MUTED, Raw, badge, box, escape, fields, image, number
from ..diagnostics.html import diagnosis_html, layers_html, verdict_badges
from ..plots.style import png_bytes
from .record import RunRecord

__all__ = ["record_html", "result_html", "sweep_report_html", "DPI"]

DPI = 72  # inline figures: about 600 px wide, 40-60 kB each


def _setup(record: RunRecord) -> list[tuple[str, Any]]:
    s = record.spec
    optimizer = f"{s.optimizer}, learning rate {s.learning_rate:g}"
    if s.momentum:
        optimizer += f", momentum {s.momentum:g}"
    return [
        ("data", f"{s.dataset}: {record.n_train} training + {record.n_val} validation rows"),
        ("hidden layers", f"{' x '.join(map(str, s.hidden))} {s.activation}" + (", residual" if s.residual else "")),
        ("weights / biases", f"{s.initializer} / {s.bias_initializer}"),
        ("optimizer", optimizer),
        ("epochs, batch size", f"{record.epochs_run} of {s.epochs}, {s.batch_size}"),
        ("seeds: init, order, data", f"{s.init_seed}, {s.order_seed}, {s.data_seed}"),
        ("trainer", f"{record.trainer} on {record.device}, {record.wall_time:.2f} s"),
    ]


def _results(record: RunRecord) -> list[tuple[str, Any]]:
    best_acc, _, best_epoch = record.best()
    out: list[tuple[str, Any]] = [
        ("val accuracy", number(record.val_accuracy)), ("val loss", number(record.val_loss)),
        ("train accuracy", number(record.train_accuracy)), ("train loss", number(record.train_loss)),
    ]
    if best_epoch is not None:
        out.append(("best val accuracy", f"{number(best_acc)} (epoch {best_epoch + 1})"))
    out += [("chance accuracy", number(record.chance_accuracy)), ("classes predicted", record.predicted_classes)]
    return out


def _status(record: RunRecord) -> Raw:
    if record.diverged_epoch is None:
        return badge("finished", "ok")
    return badge(f"diverged in epoch {record.diverged_epoch + 1}", "bad")  # 1-based, as the curves' axis


def _diagnostics(record: RunRecord, tables: bool) -> list[Raw]:
    """The verdict badges at init and at the end; the per-layer tables folded away (``tables``)."""
    out = []
    for label, summary in (("at init", record.diagnostics_init), ("after training", record.diagnostics)):
        if not summary:
            continue
        line = f'<div style="margin:2px 0"><span style="color:{MUTED}">{escape(label)}:</span> '
        line += verdict_badges(summary.get("verdicts", []))
        if tables:
            line += (f'<details style="margin-left:1em"><summary style="cursor:pointer;color:{MUTED}">layers</summary>'
                     f'{layers_html(summary.get("layers", []))}</details>')
        out.append(Raw(line + "</div>"))
    return out


def _columns(*parts: Any) -> Raw:
    cells = "".join(f'<div style="margin-right:24px">{escape(p)}</div>' for p in parts)
    return Raw(f'<div style="display:flex;flex-wrap:wrap;align-items:flex-start">{cells}</div>')


def _figures(named: list[tuple[str, str, Any]]) -> Raw:
    """``(file, caption, Figure)`` items as inline images side by side, with captions (each figure closed)."""
    out = []
    for _, caption, fig in named:
        out.append(f'<figure style="margin:6px 16px 6px 0">{image(png_bytes(fig, DPI), caption)}'
                   f'<figcaption style="color:{MUTED};font-size:11px;max-width:600px">{escape(caption)}</figcaption></figure>')
    return Raw(f'<div style="display:flex;flex-wrap:wrap;align-items:flex-start">{"".join(out)}</div>') if out else Raw("")


def _body(record: RunRecord, tables: bool = True) -> list[Raw]:
    return [_status(record), _columns(fields(_setup(record)), fields(_results(record))),
            *_diagnostics(record, tables)]


def record_html(record: RunRecord) -> Raw:
    """A run record: status, setup, results, verdicts at init and at the end, the loss curves."""
    from .outputs import history_figures  # matplotlib: loaded on first display

    figures = _figures(history_figures(record)) if record.epochs_run else ""
    return box(record.name, *_body(record), figures, subtitle=f"run {record.run_id}")


def result_html(result: Any) -> Raw:
    """An :class:`~initlab.experiments.run.ExperimentResult`: the record's summary, the findings in
    words, the decision boundary and the loss curves, and the two diagnoses folded away."""
    from .findings import findings
    from .outputs import boundary_figures, history_figures

    record = result.record
    words = Raw(f'<p style="margin:4px 0">{escape(findings(result).verdict)}</p>')
    figures = _figures(boundary_figures(result) + history_figures(result))
    diagnoses = "".join(diagnosis_html(diag, label) for label, diag in (
        ("Diagnosis at init", result.init_diagnosis), ("Diagnosis after training", result.end_diagnosis))
        if diag is not None)
    folded = Raw(f'<details><summary style="cursor:pointer;color:{MUTED}">per-layer diagnoses</summary>{diagnoses}</details>')
    return box(record.name, *_body(record, tables=False), words, figures, folded, subtitle=f"run {record.run_id}")


def sweep_report_html(report: Any) -> Raw:
    """A :class:`~initlab.experiments.sweep.SweepReport`: counts, time, where the runs are."""
    status = badge(f"{report.diverged} diverged", "warn") if report.diverged else badge("none diverged", "ok")
    rows = [
        ("runs in the grid", report.total), ("trained now", report.trained), ("already in the store", report.skipped),
        ("batches", report.batches), ("time", f"{report.wall_time:.1f} s ({number(report.runs_per_second)} runs/s)"),
        ("device, executor", f"{report.device}, {report.executor}"), ("store", report.store),
    ]
    hint = Raw(f'<div style="color:{MUTED};font-size:12px">load the runs with '
               f"<code>initlab.results.load({escape(repr(report.store))})</code></div>")
    return box("Sweep", status, fields(rows), hint, subtitle=f"spec {report.spec_hash}")
