"""Write a set of finished runs to a folder: PNG figures, results.json, report.md, report.html."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from .._json import json_safe as _json_safe
from .._version import __version__
from ..diagnostics.figures import heatmap_figure, layer_histograms, shown_snapshots
from ..plots.boundary import BoundaryPanel, boundaries_figure, boundary_figure
from ..plots.history import Curves, histories_figure, history_figure
from ..plots.style import init_color, save
from ..report import FigureRef, build_document, render_html, render_markdown
from ..runspec import RunSpec
from .record import RunRecord
from .run import ExperimentResult

__all__ = ["Outputs", "write_outputs", "experiment_figures", "FIGURE_MAKERS", "boundary_figures", "history_figures"]

NamedFigure = tuple[str, str, Figure]  # (file name, caption, figure)


@dataclass
class Outputs:
    """Where everything went."""

    folder: Path
    report_html: Path
    report_md: Path
    results_json: Path
    figures: list[Path] = field(default_factory=list)


def file_stem(name: str) -> str:
    """An experiment name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "experiment"


def _val_text(result: ExperimentResult) -> str:
    v = result.val_accuracy
    return f"val accuracy {v:.2f}" if math.isfinite(v) else f"train accuracy {result.train_accuracy:.2f}"


def run_title(spec: RunSpec) -> str:
    """The run's name, followed by its initializer and activation unless the name already says them
    (a run named "zeros + relu" is titled once, not "zeros + relu: zeros + relu")."""
    setup = f"{spec.initializer} + {spec.activation}"
    return spec.name if setup in spec.name else f"{spec.name}: {setup}"


def snapshot_steps_text(steps: Sequence[int], last_step: int) -> str:
    """Which training steps a histogram figure shows, decided from the recorded steps, e.g.
    ``"steps 1 (initialization), 75 and 225 (the last kept; training ran 300 steps)"``."""
    if not steps:
        return "no recorded step"
    notes: list[list[str]] = [[] for _ in steps]
    notes[0].append("initialization")
    notes[-1].append("the end of training" if steps[-1] >= last_step
                     else f"the last kept; training ran {last_step} steps")
    parts = [f"{s} ({'; '.join(n)})" if n else str(s) for s, n in zip(steps, notes, strict=True)]
    if len(parts) == 1:
        return f"step {parts[0]}"
    return "steps " + ", ".join(parts[:-1]) + " and " + parts[-1]


def _panel(result: ExperimentResult, title: str) -> BoundaryPanel:
    assert result.grid is not None  # callers pass only results with a grid (2-D inputs)
    return BoundaryPanel(result.grid, result.X_train, result.y_train, result.X_val, result.y_val, title,
                         init_color(result.spec.init_name), result.class_names)


def boundary_figures(result: ExperimentResult) -> list[NamedFigure]:
    """The decision boundary, when the inputs are 2-D (else none)."""
    if result.grid is None:
        return []
    s = result.spec
    title = f"{run_title(s)}, {_val_text(result)}"
    caption = (f"{s.name}: decision boundary (colour: predicted probability, black line: P = 0.5); "
               "dots are training points, outlined diamonds validation points.")
    return [(f"{file_stem(s.name)}_boundary.png", caption, boundary_figure(_panel(result, title)))]


def history_figures(result: ExperimentResult | RunRecord) -> list[NamedFigure]:
    """The loss and accuracy curves (a RunRecord has what they need: its spec and history)."""
    s = result.spec
    history = {k: [float(v) for v in values] for k, values in result.history.items()}  # a record holds arrays
    curves = Curves(s.name, history, init_color(s.init_name))
    fig = history_figure(curves, run_title(s))
    return [(f"{file_stem(s.name)}_history.png", f"{s.name}: loss and accuracy per epoch, training (solid) "
             "and validation (dashed).", fig)]


def _monitor(result: ExperimentResult) -> list[NamedFigure]:
    monitor = result.monitor
    if monitor is None or not monitor.records:
        return []
    s, stem = result.spec, file_stem(result.spec.name)
    out = [(f"{stem}_monitor.png",
            f"{s.name}: per-layer activation std and back-propagated gradient norm during training "
            f"(recorded every {monitor.every} steps; grey cells are 0, an activation std at float32 rounding "
            "level of the layer's mean included).",
            heatmap_figure(monitor, f"{s.name}: per-layer statistics during training"))]
    if monitor.snapshots:
        shown = [c["step"] for c in shown_snapshots(monitor.snapshots)]
        out.append((f"{stem}_histograms.png",
                    f"{s.name}: histograms of activations and back-propagated gradients per layer at "
                    f"{snapshot_steps_text(shown, monitor.steps_seen)} (Glorot & Bengio 2010, figs. 6-7).",
                    layer_histograms(monitor, f"{s.name}: activations and gradients per layer")))
    return out


# Each maker turns one result into (file, caption, Figure) items shown in that experiment's
# section of the report, in this order. Append a maker to add per-experiment figures
# (e.g. Monitor histograms) without touching the report code.
FIGURE_MAKERS: list[Callable[[ExperimentResult], list[NamedFigure]]] = [boundary_figures, history_figures, _monitor]


def experiment_figures(result: ExperimentResult) -> list[NamedFigure]:
    """Every per-experiment figure of ``result`` (see ``FIGURE_MAKERS``)."""
    return [item for maker in FIGURE_MAKERS for item in maker(result)]


def _overview(results: Sequence[ExperimentResult]) -> list[NamedFigure]:
    out: list[NamedFigure] = []
    with_grid = [r for r in results if r.grid is not None]
    if with_grid:
        panels = [_panel(r, f"{r.spec.name}\n{r.spec.initializer} + {r.spec.activation}, {_val_text(r)}") for r in with_grid]
        out.append(("boundaries.png", "All decision boundaries side by side; each panel's title and frame take "
                    "the colour of its initializer.", boundaries_figure(panels)))
    if len(results) > 1:
        runs = [Curves(r.spec.name, r.history, init_color(r.spec.init_name)) for r in results]
        out.append(("histories.png", "Training loss and validation accuracy of every experiment.",
                    histories_figure(runs)))
    return out



def write_outputs(
    results: Sequence[ExperimentResult], out: str | Path, title: str = "initlab report", intro: str = "",
    command: str = "train",
) -> Outputs:
    """Write every figure, ``results.json``, ``report.md`` and ``report.html`` into ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    per_experiment: dict[str, list[FigureRef]] = {}
    entries = []
    for result in results:
        refs = []
        for file, caption, fig in experiment_figures(result):
            written.append(save(fig, folder / file))
            refs.append(FigureRef(file, caption))
        per_experiment[result.name] = refs
        entry = result.to_dict()
        entry["figures"] = [ref.file for ref in refs]
        entries.append(_json_safe(entry))
    overview = []
    for file, caption, fig in _overview(results):
        written.append(save(fig, folder / file))
        overview.append(FigureRef(file, caption))
    results_json = folder / "results.json"
    payload = {"initlab_version": __version__, "command": command, "experiments": entries,
               "figures": [ref.file for ref in overview]}
    results_json.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    doc = build_document(entries, per_experiment, overview, title, intro, folder)
    report_md = folder / "report.md"
    report_md.write_text(render_markdown(doc), encoding="utf-8")
    report_html = folder / "report.html"
    report_html.write_text(render_html(doc, folder), encoding="utf-8")
    return Outputs(folder, report_html, report_md, results_json, written)
