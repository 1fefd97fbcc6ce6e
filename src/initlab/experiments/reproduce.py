"""``reproduce``: the classic zero-initialization experiments and their successors, measured."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._validation import ValidationError, check_choice, check_int, check_out_folder
from ..datasets import load_csv
from ..runspec import RunSpec

if TYPE_CHECKING:  # the report side (matplotlib) loads when a report is written, not with the package
    from .outputs import Outputs
    from .run import ExperimentResult

__all__ = ["classic_specs", "reproduce", "CLASSIC_NAMES", "DEFAULT_OUT"]

DEFAULT_OUT = "initlab-out/reproduce"

# name -> (hidden activation, weight initializer, bias initializer). The first two are the
# Keras notebook's runs (every weight and bias zero); the last two are its suggested next step.
_CLASSIC = {
    "zeros_relu": ("relu", "zeros", "zeros"),
    "zeros_sigmoid": ("sigmoid", "zeros", "zeros"),
    "xavier_tanh": ("tanh", "glorot_uniform", "zeros"),
    "he_relu": ("relu", "he_normal", "zeros"),
}
CLASSIC_NAMES = tuple(_CLASSIC)

# Called as progress(name, epoch, epochs) after every epoch (epoch counts from 1), and with
# epoch 0 when an experiment starts.
Progress = Callable[[str, int, int], None]


def classic_specs(data: str | Path | None = None, epochs: int = 100, seed: int = 0) -> list[RunSpec]:
    """The four experiments on the same data and split: 2-10-1, Adam, batch 32, 20% validation.

    ``data`` is a CSV file (default: 100 two-moons points with noise 0.1, as in the notebook).
    """
    dataset = str(data) if data is not None else "moons"
    return [
        RunSpec(name=name, dataset=dataset, activation=act, init=init, bias_init=bias, hidden=[10],
                       optimizer="adam", epochs=epochs, batch_size=32, validation_split=0.2, seed=seed)
        for name, (act, init, bias) in _CLASSIC.items()
    ]


def _selected(only: str | Sequence[str] | None) -> list[str]:
    if only is None:
        return list(CLASSIC_NAMES)
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only) if n.strip()]
    if not names:
        raise ValidationError(f"--only needs at least one experiment name (allowed: {', '.join(CLASSIC_NAMES)})")
    return [check_choice("experiment", n, CLASSIC_NAMES) for n in names]


def reproduce(
    out: str | Path = DEFAULT_OUT,
    data: str | Path | None = None,
    epochs: int = 100,
    seed: int = 0,
    only: str | Sequence[str] | None = None,
    progress: Progress | None = None,
) -> tuple[list[ExperimentResult], Outputs]:
    """Run the classic experiments and write the report, figures and results.json into ``out``.

    ``only`` picks some of ``CLASSIC_NAMES`` (a list or a comma-separated string). Everything is
    validated before the first run; returns the results and where the files went.
    """
    from ..report import CLASSIC_INTRO
    from .outputs import write_outputs
    from .run import run_experiment

    check_int("epochs", epochs, 1)
    check_int("seed", seed, 0)
    check_out_folder("out", out)  # a bad --out fails before training, not after
    names = _selected(only)
    if data is not None:
        load_csv(data)  # fail now, with the file's own one-line error
    specs = [s for s in classic_specs(data, epochs, seed) if s.name in names]
    results = []
    for spec in specs:
        hook = (lambda done, _n=spec.name, _e=spec.epochs: progress(_n, done, _e)) if progress else None
        results.append(run_experiment(spec, on_epoch=hook))
    outputs = write_outputs(results, out, title="initlab reproduce: zero initialization and its fixes, measured",
                            intro=CLASSIC_INTRO, command="reproduce")
    return results, outputs
