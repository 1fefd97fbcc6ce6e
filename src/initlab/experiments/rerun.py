"""Whether ``initlab train --spec`` reproduced a stored run: measured, by comparing the numbers.

A run's numbers depend on float rounding, and rounding depends on how the run was trained: in
a sweep's batch (the batched trainer, with batch mates) or alone (``train --spec`` uses the
single-model trainer). Training can amplify such differences. Measured (tanh, depth 20, width
16, 30 epochs, 4 seeds; the batched trainer, one run alone against the same run in a batch of
4): the losses agree at the first epoch and by ~3e-7 at the second, then drift apart; final
val_loss differs by up to 0.19 with variance scaling 4 (chaotic at init, chi_1 = 1.36), and
still by up to 0.003-0.012 with scales 0.5 and 0.25 (ordered, chi_1 < 1). So the mean-field
phase at init does not decide whether a run re-runs exactly; only a comparison does. That was
the torch path of the batched trainer. On the CPU the trainer's fused kernel trains each net in
its own SIMD lane, so there a run's numbers do not depend on its batch mates, the batch size or
the thread count (bit for bit, tested); the torch path (a GPU, a few wide deep nets, no C
compiler) still shows the drift above. The store records each run's batch size
(``batch_runs``); ``train --spec`` on a stored record or a results.json (the single-model trainer:
other kernels again) compares its numbers with the stored ones and says which differ, by how much,
and why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["RERUN_TOLERANCE", "RERUN_METRICS", "stored_runs", "compare_rerun"]

RERUN_TOLERANCE = 1e-5  # largest |difference| of a metric that still counts as the same numbers (float32 rounding)
RERUN_METRICS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def stored_runs(path: str | Path) -> dict[str, dict[str, Any]]:
    """run_id -> stored numbers of each run in a JSON file (``initlab results --run ID --format
    json``, a results.json) that holds metrics; {} for a bare spec or an unreadable file."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    entries: list[Any] = raw["experiments"] if isinstance(raw, Mapping) and isinstance(raw.get("experiments"), list) else [raw]
    out = {}
    for entry in entries:
        if isinstance(entry, Mapping) and isinstance(entry.get("run_id"), str) and "val_loss" in entry:
            out[entry["run_id"]] = dict(entry)
    return out


def compare_rerun(stored: Mapping[str, Any], rerun: Mapping[str, Any], tolerance: float = RERUN_TOLERANCE
                  ) -> dict[str, Any]:
    """The metrics of a stored run against its re-run: ``same`` (every metric within ``tolerance``),
    ``max_abs_diff``, ``diffs`` per metric, and ``note``, one sentence saying what the numbers show."""
    diffs = {}
    for key in RERUN_METRICS:
        old, new = stored.get(key), rerun.get(key)
        if (isinstance(old, (int, float)) and isinstance(new, (int, float))
                and math.isfinite(old) and math.isfinite(new)):
            diffs[key] = abs(float(new) - float(old))
        elif old != new:  # one diverged (null) and the other not
            diffs[key] = math.inf
    worst = max(diffs.values(), default=0.0)
    same = worst <= tolerance
    if same:
        note = f"re-run matches the stored numbers (largest difference {worst:.1e}, within {tolerance:g})"
    else:
        old, new = stored.get("val_loss"), rerun.get("val_loss")
        note = (f"re-run differs from the stored numbers: val_loss {_num(new)} now, {_num(old)} stored (largest "
                f"difference {worst:.2g}); the stored run trained {_how(stored, rerun)}, and the float rounding that "
                "depends on it grew during training: this run cannot be re-run exactly")
    return {"same": same, "max_abs_diff": worst, "diffs": diffs, "note": note}


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "null"


def _how(stored: Mapping[str, Any], rerun: Mapping[str, Any]) -> str:
    batch = stored.get("batch_runs")
    old, new = stored.get("trainer"), rerun.get("trainer")
    if old and new and old != new:  # another trainer, other kernels: its batch mates do not matter then
        return f"with the {old} trainer (this re-run: the {new} one)"
    if isinstance(batch, int) and batch > 1:  # the same trainer: only its torch path rounds by batch
        return f"in a batch of {batch} runs (this re-run: alone)"
    return "in another batch or process"
