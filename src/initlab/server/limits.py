"""Every server-side limit of the browser lab, in one place.

The request models in ``specs.py`` read their bounds from here, so a request outside them is
rejected with a 4xx JSON error before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits", "LIMITS"]


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for, and on how many runs may go at once."""

    min_samples: int = 20  # enough rows to hold some out for validation
    max_samples: int = 2000  # generated points, and rows of an uploaded CSV
    max_noise: float = 1.0
    max_hidden_layers: int = 8
    max_units: int = 64  # per hidden layer
    max_epochs: int = 2000
    max_batch_size: int = 2000
    max_learning_rate: float = 10.0
    max_classes: int = 10  # of an uploaded CSV
    max_upload_bytes: int = 1_000_000  # a CSV upload, also when sent inline in a run spec
    max_body_bytes: int = 2_200_000  # any request body (an inline CSV is JSON-escaped, so larger)
    max_init_params: int = 8
    max_abs_param: float = 1e6  # any numeric initializer parameter
    min_compare: int = 2
    max_compare: int = 4
    max_runs_per_client: int = 2  # concurrent runs per client host; beyond: 429
    max_runs_total: int = 6  # concurrent runs on the server; beyond: 503
    grid: int = 40  # the decision-boundary heat map is grid x grid probabilities
    events_per_second: float = 20.0  # progress events are throttled to about this rate
    min_run_seconds: float = 3.0  # a shorter run is paced to last this long, so the view animates


LIMITS = Limits()
