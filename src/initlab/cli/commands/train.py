"""``initlab train``: one experiment, any data set, initializer, activation and network.

The run options are generated from :meth:`RunSpec.field_table` (names, defaults, bounds, help), so
a field added to the spec is an option here without a second declaration; only the options that
are not run fields (``--seed``, ``--spec``, ``--run``, ``--out``, ``--json``) are written out.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import typer

from ...runspec import RunSpec, SpecField, parse_init  # pydantic only: help needs no torch
from ..defaults import TRAIN_OUT
from ..main import app
from ._runs import epoch_progress, print_results

_TYPES = {"int": int, "float": float, "bool": bool}
_ALIASES = {"learning_rate": ("--lr",)}  # extra spellings of a field's option
# fields whose CLI default differs from the spec's: None means "the spec decides" (see the help)
_CLI_DEFAULTS = {"name": (None, "default: INIT_ACTIVATION"), "learning_rate": (None, ""),
                 "init_seed": (None, "overrides --seed"), "order_seed": (None, "overrides --seed")}


def _bounds(field: SpecField) -> str:
    if field.minimum is None and field.maximum is None:
        return ""
    lo = "-inf" if field.minimum is None else f"{field.minimum}"
    hi = "inf" if field.maximum is None else f"{field.maximum}"
    left, right = "(" if field.exclusive_minimum else "[", ")" if field.exclusive_maximum else "]"
    each = "each size " if field.kind == "sizes" else ""
    return f"; {each}in {left}{lo}, {hi}{right}"


def _option(field: SpecField) -> inspect.Parameter:
    """One spec field as a typer option: ``--field-name``, the spec's default, its help with bounds/choices."""
    default, note = _CLI_DEFAULTS.get(field.name, (field.default, ""))
    help_text = field.help + _bounds(field)
    if field.choices:
        help_text += f" (one of: {', '.join(field.choices)})"
    if note:
        help_text += f" ({note})"
    flag = "--" + field.name.replace("_", "-")
    if field.kind == "bool":
        decls: tuple[str, ...] = (f"{flag}/--no-{field.name.replace('_', '-')}",)
        annotation: Any = bool
    else:
        decls = (flag, *_ALIASES.get(field.name, ()))
        annotation = _TYPES.get(field.kind, str)
        if default is None or field.optional:
            annotation = annotation | None
    if field.kind == "sizes":
        default = ",".join(map(str, default))
    elif field.kind == "init" and not isinstance(default, str):
        default = json.dumps(default)
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(default, *decls, help=help_text))


_EXTRA = [
    inspect.Parameter("seed", inspect.Parameter.KEYWORD_ONLY, annotation=int, default=typer.Option(
        0, "--seed", help="Seed of the weight draw and the minibatch order (sets both).")),
    inspect.Parameter("spec_file", inspect.Parameter.KEYWORD_ONLY, annotation=Path | None, default=typer.Option(
        None, "--spec", help="Re-run the runs of a results.json (from train, reproduce or the lab's download) or of "
                             "`initlab results --run ID --format json`; the other options are ignored.")),
    inspect.Parameter("run", inspect.Parameter.KEYWORD_ONLY, annotation=str | None, default=typer.Option(
        None, "--run", help="With --spec: only the run with this name or run id.")),
    inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Path, default=typer.Option(
        Path(TRAIN_OUT), "--out", help="Folder for report.html, report.md, results.json and the PNGs.")),
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(
        False, "--json", help="Print the results as JSON instead of a table.")),
]


def _spec_from_options(options: dict[str, Any]) -> RunSpec:
    """The options' run: ``--seed`` fills the seeds not given alone; initializers parsed; name defaulted."""
    seed = options.pop("seed")
    values = {k: v for k, v in options.items() if v is not None or k == "learning_rate"}
    values["init"], values["bias_init"] = parse_init(values["init"]), parse_init(values["bias_init"])
    for key in ("init_seed", "order_seed"):
        values.setdefault(key, seed)
    if "name" not in values:
        init = values["init"]
        values["name"] = f"{options['init'] if isinstance(init, str) else init['name']}_{values['activation']}"
    return RunSpec(**values)


def train_command(**options: Any) -> None:
    """Train one network and measure its initialization before and after; same outputs as reproduce.

    Examples:

      initlab train --dataset moons --init he_normal --activation relu --hidden 10

      initlab train --dataset circles --init zeros --activation tanh --hidden 16,16 --epochs 200 --out /tmp/t

      initlab train --spec initlab-out/reproduce/results.json --run zeros_relu
    """
    from ...experiments.rerun import stored_runs
    from ...experiments.train import load_specs, train_many

    spec_file, run, out, as_json = (options.pop(k) for k in ("spec_file", "run", "out", "as_json"))
    specs = load_specs(spec_file, run) if spec_file is not None else [_spec_from_options(options)]
    with epoch_progress(quiet=as_json) as progress:
        _, outputs = train_many(specs, out, progress=progress)
    entries = json.loads(outputs.results_json.read_text())["experiments"]
    stored = stored_runs(spec_file) if spec_file is not None else None  # a re-run is compared with its stored numbers
    print_results(entries, outputs.folder, outputs.figures, as_json, stored=stored)


train_command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [_option(f) for f in RunSpec.field_table()] + _EXTRA)
app.command("train")(train_command)
