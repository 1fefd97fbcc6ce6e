"""Every server-side limit of the browser lab, in one place.

The lab's request bodies (``specs.py``) are derived from :class:`~initlab.experiments.RunSpec`'s
fields; :data:`FIELD_BOUNDS` is an overlay that tightens a field's declared range (one field, one
range: the message names the effective one). :data:`PARAM_BOUNDS` bounds every numeric parameter
of every initializer scheme (the data-dependent ones by the work they may do), and
:meth:`Limits.check` bounds the work of a whole run (minibatch steps). A request outside them is
rejected with a 4xx JSON error before any work starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._validation import ValidationError, check_choice

if TYPE_CHECKING:
    from ..runspec import RunSpec

__all__ = ["Limits", "LIMITS", "UPLOAD_NAME", "FIELD_BOUNDS", "PARAM_BOUNDS", "LAB_DEFAULTS", "param_bounds",
           "LOOPBACK_HOSTS"]

UPLOAD_NAME = "upload.csv"  # the dataset name of a run on an uploaded CSV

# Host headers the lab answers by default (anything else is refused: DNS rebinding). Starlette's
# TestClient sends "testserver", a single-label name no public DNS resolves.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]", "testserver")


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for, and on how many runs may go at once.

    A lab run is an ordinary :class:`~initlab.experiments.RunSpec` (whose own bounds apply);
    these, tighter ones, overlay them because the lab is a public endpoint.
    """

    datasets: tuple[str, ...] = ("moons", "circles", "xor", "spirals", "gaussians")  # 2-D sets to draw

    min_samples: int = 20  # enough rows to hold some out for validation
    max_samples: int = 2000  # generated points, and rows of an uploaded CSV
    max_noise: float = 1.0
    max_validation_split: float = 0.5
    max_hidden_layers: int = 8
    max_units: int = 64  # per hidden layer
    max_epochs: int = 2000
    max_batch_size: int = 2000
    max_learning_rate: float = 10.0
    max_steps: int = 200_000  # epochs x minibatches per epoch, of one request
    max_classes: int = 10  # of an uploaded CSV
    max_upload_bytes: int = 1_000_000  # a CSV upload, also when sent inline in a run spec
    max_body_bytes: int = 2_200_000  # any request body (an inline CSV is JSON-escaped, so larger)
    max_init_params: int = 8
    max_abs_param: float = 1e6  # any numeric initializer parameter without its own bound below
    min_compare: int = 2
    max_compare: int = 4
    max_sweep_seeds: int = 10  # an in-page sweep: inits x seeds, one stack
    max_sweep_steps: int = 400_000  # minibatch steps summed over a sweep's runs
    max_runs_per_client: int = 2  # concurrent runs and previews per client host; beyond: 429
    max_runs_total: int = 6  # concurrent runs and previews on the server; beyond: 503
    grid: int = 40  # the decision-boundary heat map is grid x grid probabilities
    tile_grid: int = 16  # each neuron's picture is tile_grid x tile_grid outputs
    events_per_second: float = 20.0  # progress events are throttled to about this rate
    min_run_seconds: float = 3.0  # a shorter run is paced to last this long, so the view animates

    def check_dataset(self, dataset: str) -> str:
        return check_choice("dataset", dataset, (*self.datasets, "csv"), hint="the lab draws 2-D sets")

    def check(self, spec: RunSpec) -> RunSpec:
        """``spec`` if its work is within the lab's limits, else a one-line ValidationError naming the field.

        The lab's requests are parsed within :data:`FIELD_BOUNDS` already; a RunSpec made elsewhere
        is checked against them here, with the same message (the field's effective range). Then
        what they multiply to is bounded: the minibatch steps of the whole run.
        """
        from .specs import describe  # specs reads this module's tables

        if spec.dataset != UPLOAD_NAME:
            self.check_dataset(spec.dataset)
        if len(spec.hidden) > self.max_hidden_layers:
            raise ValidationError(f"hidden: at most {self.max_hidden_layers} layer(s), got {len(spec.hidden)}")
        for field, (lo, hi) in FIELD_BOUNDS.items():
            values = enumerate(spec.hidden) if field == "hidden" else [(None, getattr(spec, field, None))]
            for i, value in values:
                if not isinstance(value, (int, float)):
                    continue
                if (lo is not None and value < lo) or (hi is not None and value > hi):
                    where = field if i is None else f"{field}[{i}]"
                    raise ValidationError(f"{where}: must be {describe(field)}, got {value!r}")
        self.check_steps(spec)
        return spec

    def check_steps(self, spec: RunSpec) -> int:
        """The run's minibatch steps (at most; the held-out rows train no step), within ``max_steps``."""
        batch = spec.batch_size or spec.n_samples  # None: full batch (one step per epoch)
        steps = spec.epochs * math.ceil(spec.n_samples / batch)
        if steps > self.max_steps:
            raise ValidationError(
                f"epochs: at most {self.max_steps} minibatch steps per run in the lab, got {steps} "
                f"({spec.epochs} epochs x {math.ceil(spec.n_samples / batch)} batches of {batch}); "
                "use fewer epochs or a larger batch_size")
        return steps


LIMITS = Limits()

# RunSpec field -> (lowest, highest) the lab allows (None: RunSpec's own bound). For ``hidden``,
# the bounds of one layer's size; its length is bounded by ``max_hidden_layers``.
FIELD_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "n_samples": (LIMITS.min_samples, LIMITS.max_samples),
    "noise": (None, LIMITS.max_noise),
    "validation_split": (None, LIMITS.max_validation_split),
    "hidden": (None, LIMITS.max_units),
    "epochs": (None, LIMITS.max_epochs),
    "batch_size": (None, LIMITS.max_batch_size),
    "learning_rate": (None, LIMITS.max_learning_rate),
}

# The lab's own defaults where they differ from RunSpec's (the classic notebook's): a run of
# 200 points at Adam 0.03 moves the boundary within the 3 s a run is paced to; the classic setup
# (100 points, Adam 0.001) is the "Classic notebook" preset.
LAB_DEFAULTS: dict[str, Any] = {"n_samples": 200, "noise": 0.2, "learning_rate": 0.03, "epochs": 200}

# (scheme, parameter) -> (lowest, highest): parameters whose value sets the work done or needs a
# range narrower than ``max_abs_param``. LSUV's passes each run the model forward on the data.
PARAM_BOUNDS: dict[tuple[str, str], tuple[float, float]] = {
    ("lsuv", "max_iter"): (1, 50),
    ("lsuv", "tol"): (1e-3, 1.0),
    ("identity", "groups"): (1, 64),
    ("sparse", "sparsity"): (0.0, 1.0),
    ("critical", "sigma_b2"): (0.0, 10.0),
}


def param_bounds(scheme: str, param: str) -> tuple[float, float]:
    """The range the lab allows for a numeric parameter of an initializer scheme."""
    return PARAM_BOUNDS.get((scheme, param), (-LIMITS.max_abs_param, LIMITS.max_abs_param))
