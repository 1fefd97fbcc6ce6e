"""``train``: one experiment from a spec, written out like ``reproduce``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._validation import DataError, ValidationError, check_out_folder
from ..runspec import RunSpec
from .execute import load_split

if TYPE_CHECKING:  # the report side (matplotlib) loads when a report is written, not with the package
    from .outputs import Outputs
    from .run import ExperimentResult

__all__ = ["train", "train_many", "load_specs", "DEFAULT_TRAIN_OUT"]

DEFAULT_TRAIN_OUT = "initlab-out/train"


def train(
    spec: RunSpec, out: str | Path = DEFAULT_TRAIN_OUT,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[ExperimentResult, Outputs]:
    """Run ``spec`` and write its report, figures and results.json into ``out``.

    ``progress(name, epoch, epochs)`` is called with epoch 0 at the start and after every epoch.
    """
    results, outputs = train_many([spec], out, progress)
    return results[0], outputs


def train_many(
    specs: Sequence[RunSpec], out: str | Path = DEFAULT_TRAIN_OUT,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[list[ExperimentResult], Outputs]:
    """Run every spec (e.g. all entries of a results.json) and write one report for them."""
    from .outputs import write_outputs
    from .run import run_experiment

    if not specs:
        raise ValidationError("no run to train")
    check_out_folder("out", out)  # a bad --out fails before training, not after
    for spec in specs:
        if spec.dataset.lower().endswith(".csv"):
            load_split(spec)  # a bad file fails here, before any progress is shown
    results = []
    for spec in specs:
        hook = (lambda done, _s=spec: progress(_s.name, done, _s.epochs)) if progress else None
        results.append(run_experiment(spec, on_epoch=hook))
    if len(specs) == 1:
        s = specs[0]
        title = f"initlab train: {s.name} ({s.initializer} + {s.activation})"
    else:
        title = f"initlab train: {len(specs)} runs"
    outputs = write_outputs(results, out, title=title, command="train")
    return results, outputs


def load_specs(path: str | Path, select: str | None = None) -> list[RunSpec]:
    """The run specs in a JSON file: a results.json (of ``train``, ``reproduce`` or the lab), one
    record (``initlab results --run ID --format json``), or a bare spec. ``select`` keeps the
    entries whose name or run id is ``select``."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"spec file {str(path)!r} does not exist")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{str(path)!r} is not a JSON file ({err}); give a results.json or a run spec") from None
    except RecursionError:  # json recurses once per nesting level
        raise DataError(f"{str(path)!r} nests too deeply to be a results.json or a run spec") from None
    entries = _entries(raw)
    if entries is None:
        raise DataError(f"{str(path)!r} is neither a results.json (an 'experiments' list) nor a run record or spec")
    specs = []
    for i, entry in enumerate(entries):
        try:
            specs.append(RunSpec(**entry))
        except ValidationError as err:
            raise ValidationError(f"{path.name}, run #{i + 1}: {err}") from None
    if select is not None:
        kept = [s for s in specs if select in (s.name, s.run_id)]
        if not kept:
            names = ", ".join(f"{s.name} ({s.run_id})" for s in specs)
            raise ValidationError(f"no run named {select!r} in {path.name} (runs: {names})")
        specs = kept
    return specs


def _entries(raw: Any) -> list[Mapping[str, Any]] | None:
    """The spec dicts of a results.json, a record, or a spec."""
    if isinstance(raw, Mapping) and isinstance(raw.get("experiments"), list):
        found = [_entries(e) for e in raw["experiments"]]
        return None if any(f is None for f in found) or not found else [f[0] for f in found if f is not None]
    if isinstance(raw, Mapping) and isinstance(raw.get("spec"), Mapping):
        return [raw["spec"]]
    if isinstance(raw, Mapping) and isinstance(raw.get("record"), Mapping):
        return _entries(raw["record"])
    if isinstance(raw, Mapping) and raw and set(raw) <= set(RunSpec.model_fields) | {"seed"}:
        return [raw]
    return None
