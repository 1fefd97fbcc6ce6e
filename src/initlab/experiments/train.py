"""``train``: one experiment from a spec, written out like ``reproduce``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .._validation import check_out_folder
from .outputs import Outputs, write_outputs
from .run import ExperimentResult, load_data, run_experiment
from .spec import ExperimentSpec

__all__ = ["train", "DEFAULT_TRAIN_OUT"]

DEFAULT_TRAIN_OUT = "initlab-out/train"


def train(
    spec: ExperimentSpec, out: str | Path = DEFAULT_TRAIN_OUT,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[ExperimentResult, Outputs]:
    """Run ``spec`` and write its report, figures and results.json into ``out``.

    ``progress(name, epoch, epochs)`` is called with epoch 0 at the start and after every epoch.
    """
    check_out_folder("out", out)  # a bad --out fails before training, not after
    if spec.dataset.lower().endswith(".csv"):
        load_data(spec)  # a bad file fails here, before any progress is shown
    if progress is not None:
        progress(spec.name, 0, spec.epochs)
    hook = (lambda epoch, logs: progress(spec.name, epoch + 1, spec.epochs)) if progress else None
    result = run_experiment(spec, on_epoch=hook)
    title = f"initlab train: {spec.name} ({spec.initializer} + {spec.activation})"
    outputs = write_outputs([result], out, title=title, command="train")
    return result, outputs
