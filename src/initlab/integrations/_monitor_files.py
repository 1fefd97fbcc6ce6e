"""What a trainer callback writes at the end of training: a Monitor's heat map, histograms and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from ..diagnostics.monitor import Monitor
from .._json import json_safe as _json_safe

__all__ = ["write_monitor", "missing_extra"]



def write_monitor(monitor: Monitor, out: str | Path, title: str = "training") -> dict[str, Path]:
    """Write ``monitor.json`` (every record), ``monitor_heatmap.png`` and ``monitor_histograms.png`` into ``out``.

    The figures are written when there is something to draw (a recorded step; a histogram snapshot).
    """
    from ..diagnostics.figures import heatmap_figure, layer_histograms  # matplotlib: loaded at the end of training
    from ..plots.style import save

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "monitor.json"}
    paths["json"].write_text(json.dumps(_json_safe(monitor.to_dict()), indent=2) + "\n")
    if monitor.records:
        paths["heatmap"] = save(heatmap_figure(monitor, f"{title}: per-layer statistics during training"),
                                folder / "monitor_heatmap.png")
    if monitor.snapshots:
        paths["histograms"] = save(layer_histograms(monitor, f"{title}: activations and gradients per layer"),
                                   folder / "monitor_histograms.png")
    return paths


def missing_extra(package: str, extra: str) -> str:
    """The one line a callback raises when its framework is not installed."""
    return f"initlab's {extra} callback needs {package}, which is not installed: pip install 'initlab[{extra}]'"
