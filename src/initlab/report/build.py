"""Assemble the report document from results.json entries and the figures written beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..diagnostics import thresholds
from .document import Bullets, Document, Heading, Image, Paragraph, Table
from .explain import TABLE_COLUMNS, measured_sentences, notebook_comparison, table_row

__all__ = ["FigureRef", "build_document", "CLASSIC_INTRO"]

CLASSIC_INTRO = (
    "A classic Keras notebook trains a tiny network on 100 points of a U-shaped two-class data set (two moons): "
    "`Dense(10, relu, input_dim=2)` then `Dense(1, sigmoid)`, **every weight and bias set to zero**, binary "
    "cross-entropy, Adam with Keras' defaults, `fit(epochs=100, validation_split=0.2)` with minibatches of 32. "
    "Then the same with a sigmoid hidden layer. Its table says the ReLU net \"failed to break symmetry\" and the "
    "sigmoid net \"suffered from vanishing gradients\"; its next step is Xavier/Glorot with tanh and He with ReLU. "
    "initlab runs the same experiments and, instead of repeating the notebook's explanation, measures each network "
    "before the first step and after the last: how many hidden units are really different, how many are dead, and "
    "how much gradient reaches the hidden layer."
)


@dataclass
class FigureRef:
    """A figure file beside the report and what it shows."""

    file: str
    caption: str


def _setup(entries: Sequence[Mapping[str, Any]]) -> str:
    e = entries[0]
    data = f"{e['dataset']} ({e['n_samples']} points: {e['n_train']} for training, the last {e['n_val']} for validation)"
    nets = sorted({"-".join(str(x) for x in e_["hidden"]) for e_ in entries})
    return (f"Data: {data}. Hidden layers: {', '.join(nets)}. Optimizer: {e['optimizer']} (learning rate "
            f"{e['learning_rate']:g}), {e['epochs']} epochs, minibatches of {e['batch_size']}; seeds: data "
            f"{e['data_seed']}, weights {e['init_seed']}, minibatch order {e['order_seed']}.")


def build_document(
    entries: Sequence[Mapping[str, Any]],
    figures: Mapping[str, Sequence[FigureRef]],
    overview: Sequence[FigureRef] = (),
    title: str = "initlab report",
    intro: str = "",
    folder: Path | None = None,
) -> Document:
    """The report: intro, setup, table, overview figures, one section per experiment, notebook comparison."""
    doc = Document(title)
    if intro:
        doc.add(Paragraph(intro))
    doc.add(Paragraph(_setup(entries)))
    doc.add(Heading("Results"), Table(TABLE_COLUMNS, [table_row(dict(e)) for e in entries]))
    doc.add(Paragraph(
        "\"Step 0\" is measured on the training data before the first update, so its gradient is the one the "
        "first step uses; \"the end\" is after the last epoch. The gradient is the norm of dLoss/dW of the first "
        "hidden layer. The verdict is written from these measurements, not from the experiment's name."))
    for ref in overview:
        doc.add(Image(ref.file, ref.caption, folder / ref.file if folder else None))
    # The learner's question first: was the notebook's explanation right? Then the details.
    comparison = notebook_comparison([dict(e) for e in entries])
    if comparison:
        doc.add(Heading("Compared with the classic notebook"))
        doc.add(*[Paragraph(p) for p in comparison])
    doc.add(Heading("What the measurements say"))
    for e in entries:
        doc.add(Heading(f"{e['name']}: {e['initializer']} weights, {e['activation']} hidden units", 3))
        doc.add(Paragraph(f"**{e['summary']['verdict']}.**"), Bullets(measured_sentences(dict(e))))
        # Per-experiment figures: decision boundary, training curves, and whatever else the
        # caller attaches (e.g. Monitor histograms) all arrive through ``figures``.
        for ref in figures.get(e["name"], ()):
            doc.add(Image(ref.file, ref.caption, folder / ref.file if folder else None))
    doc.add(Heading("How it is measured"), Bullets([
        f"Distinct units: two hidden units count as one when their incoming weights and bias agree and their "
        f"outgoing weights (in the layer that reads them) agree, each within {thresholds.SYMMETRY_TOL:g} times the "
        "larger of the two units' largest |weight| (so the count is the same at any weight scale). Such units compute "
        "the same output and get the same gradient, so SGD or Adam keeps them equal.",
        "Dead unit: its output is exactly 0, where the activation's slope is exactly 0, on every training input "
        "(a ReLU unit below 0 everywhere), so it passes no gradient. The slope is measured on the activation itself.",
        f"Saturated output: one where the activation's slope is below {thresholds.SATURATION_SLOPE:g} of its "
        "largest slope, for an activation bounded on both sides (tanh: |a| > 0.98; sigmoid: a < 0.0101 or a > 0.9899); "
        "activations unbounded on a side, such as ReLU, are not checked.",
        f"A layer gets the `dead_units` verdict when at least {thresholds.DEAD_FRACTION:.0%} of its units are dead, "
        f"`saturation` when at least {thresholds.SATURATED_FRACTION:.0%} of its outputs are saturated; "
        f"`vanishing_gradients`/`exploding_gradients` need at least {thresholds.MIN_LAYERS_FOR_DEPTH_VERDICTS} "
        "weighted layers.",
        "Chance level: the share of the most frequent class in the validation data; accuracy within 0.05 of it "
        "counts as chance.",
        "Every number is in results.json, with the full per-layer diagnostics at step 0 (`diagnostics_init`) "
        "and at the end (`diagnostics`).",
    ]))
    return doc
