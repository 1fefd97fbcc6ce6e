"""What the trainer callbacks (hf, lightning) share: their framework imported on first use, with one
line naming the extra when it is missing, and the files written at the end of training (a
Monitor's heat map, histograms and JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .._json import json_safe as _json_safe
from .._validation import InitlabError
from ..diagnostics.monitor import Monitor

__all__ = ["write_monitor", "import_extra", "lazy_callback"]


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


def import_extra(module: str, package: str, extra: str) -> ModuleType:
    """``module`` imported, or the one line a callback raises when its framework is not installed."""
    try:
        return __import__(module, fromlist=["__name__"])  # as an import statement does (the submodule itself)
    except ImportError:
        raise InitlabError(f"initlab's {extra} callback needs {package}, which is not installed: "
                           f"pip install 'initlab[{extra}]'") from None


def lazy_callback(namespace: dict[str, Any], build: Callable[[], type]) -> Callable[[str], type]:
    """A module ``__getattr__`` that builds ``MonitorCallback`` with ``build()`` on first access (so the
    framework is imported only then) and keeps it in the module's ``namespace``."""
    def __getattr__(name: str) -> type:
        if name != "MonitorCallback":
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        cls = build()
        cls.__module__ = namespace["__name__"]
        namespace[name] = cls
        return cls

    return __getattr__
