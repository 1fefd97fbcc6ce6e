"""Property-based tests (hypothesis, issue #21): whatever the input, every parser of user input
returns a valid object or raises a one-line :class:`initlab.InitlabError` (``ValidationError`` for
parameters, ``DataError`` for data files), never another exception.

Covered: the CSV loader, sweep specs (TOML text and parsed tables), initializer specs
(``initlab.initializers.get`` and the draw), ``RunSpec`` and the lab's request bodies
(``initlab.server.specs``, as the lab validates them). Each property runs a bounded number of
examples (``EXAMPLES``) with no deadline, so the file runs in well under a minute.
"""

from __future__ import annotations

import math
import string

import numpy as np
import pydantic
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from initlab import initializers
from initlab._validation import InitlabError
from initlab.datasets.files import MIN_ROWS, parse_csv
from initlab.experiments import RunSpec
from initlab.experiments.sweep_spec import GRID_AXES, GRID_OPTIONAL, SweepSpec, parse_spec
from initlab.runspec import MAX_DEPTH

EXAMPLES = 150
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _one_line(err: BaseException) -> None:
    text = str(err)
    assert text and "\n" not in text, repr(text)
    event(f"rejected: {type(err).__name__}")


# ------------------------------------------------------------------ value strategies
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-45, 3.4e38, 3.5e38, 1e308, -1e308, 0.5, 2.0]),
)
INTS = st.one_of(st.integers(-10, 100), st.sampled_from([2**31, 2**32 - 1, 2**32, 2**63, -(2**63), 10**30]))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=8)


# ------------------------------------------------------------------ the CSV loader
NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**40), 10**40).map(str),
    st.sampled_from(["1e308", "-1e39", "3.4e38", "nan", "inf", "-inf", "", " ", "1,5", "0x10", "1_000", "+1", "١"]),
    st.text(alphabet=string.printable, max_size=6),
)
CELL = st.one_of(NUMBER_TEXT, st.text(max_size=6))


@st.composite
def csv_texts(draw) -> str:
    """A CSV file's text: a header of 1-4 names, 0-12 rows of numbers, labels and junk."""
    header = draw(st.lists(st.one_of(st.sampled_from(["x", "y", "class", "X", "Y", ""]), st.text(max_size=5)),
                           min_size=1, max_size=4))
    rows = draw(st.lists(st.lists(CELL, min_size=len(header) - 1, max_size=len(header) + 1), max_size=12))
    quote = draw(st.booleans())
    lines = [",".join(f'"{c}"' if quote else c for c in header)] + [",".join(r) for r in rows]
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n"]))


def _mostly(valid, invalid=SCALARS, odds: int = 12):
    """A valid value, or one time in ``odds`` an invalid one: specs with several values reach the accepting path too."""
    return st.integers(0, odds - 1).flatmap(lambda i: valid if i else invalid)


# what a file may hold: ordinary numbers, and now and then any finite float64 (beyond float32's range too)
GOOD_NUMBER = _mostly(st.one_of(st.floats(-1e6, 1e6).map(repr), st.integers(-100, 100).map(str)),
                      st.floats(allow_nan=False, allow_infinity=False).map(repr), odds=20)


@st.composite
def plausible_csv_texts(draw) -> str:
    """Mostly well-formed files (a header, 5-12 rows of numbers, a label column), some cells hostile."""
    k = draw(st.integers(2, 4))
    header = draw(st.lists(st.text(alphabet=string.ascii_letters, min_size=1, max_size=4), min_size=k, max_size=k,
                           unique=True))
    labels = draw(st.sampled_from([["0", "1"], ["a", "b", "c"], ["1", "1.0", "2"], ["-0", "0", "nan"], ["x"]]))
    rows = []
    for _ in range(draw(st.integers(MIN_ROWS, 12))):
        cells = [draw(_mostly(GOOD_NUMBER, NUMBER_TEXT, odds=30)) for _ in range(k - 1)]
        rows.append(",".join([*cells, draw(st.sampled_from(labels))]))
    return "\n".join([",".join(header), *rows]) + "\n"


@PROPERTY
@given(text=st.one_of(plausible_csv_texts(), plausible_csv_texts(), csv_texts(), st.text(max_size=200)))
def test_csv_loader_returns_finite_float32_data_or_one_line_error(text):
    try:
        X, y, classes = parse_csv(text, "data.csv")
    except InitlabError as err:
        _one_line(err)
        return
    event("accepted")
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.ndim == 2 and X.shape[0] == len(y) >= MIN_ROWS and X.shape[1] >= 1
    assert np.isfinite(X).all()  # finite after the cast to float32, what the networks see
    assert len(classes) >= 2 and len(set(classes)) == len(classes)
    assert set(y.tolist()) <= set(range(len(classes)))


# ------------------------------------------------------------------ sweep specs
AXIS_VALUES = {
    "init": _mostly(st.sampled_from(["he_normal", "zeros", "glorot_uniform", "orthogonal"]),
                    st.one_of(st.just("he_norml"),
                              st.dictionaries(st.sampled_from(["name", "scale", "std", "mode"]), SCALARS, max_size=3))),
    "activation": _mostly(st.sampled_from(["relu", "tanh", "sigmoid", "RELU", "linear"]),
                          st.sampled_from(["relu6", ""])),
    "depth": _mostly(st.integers(1, 3), st.one_of(st.integers(-2, MAX_DEPTH + 2), SCALARS)),
    "width": _mostly(st.integers(1, 8), st.one_of(st.integers(-2, 10**6), SCALARS)),
    "seed": _mostly(st.integers(0, 3), st.one_of(INTS, SCALARS)),
    "learning_rate": _mostly(st.floats(1e-4, 1.0)),
    "optimizer": _mostly(st.sampled_from(["adam", "sgd", "rmsprop"])),
    "batch_size": _mostly(st.integers(1, 64)),
    "epochs": _mostly(st.integers(1, 5)),
    "momentum": _mostly(st.floats(0.0, 0.99)),
    "bias_init": _mostly(st.sampled_from(["zeros", "normal"])),
}
DATA_VALUES = {"name": _mostly(st.sampled_from(["moons", "circles", "xor"])), "n_samples": _mostly(st.integers(4, 500)),
               "noise": _mostly(st.floats(0.0, 1.0)), "seed": _mostly(st.integers(0, 2**32 - 1)),
               "validation_split": _mostly(st.floats(0.0, 0.5))}
TRAIN_VALUES = {k: AXIS_VALUES[k]
                for k in ("learning_rate", "optimizer", "batch_size", "epochs", "momentum", "bias_init")}
TRAIN_VALUES["diagnostics"] = _mostly(st.booleans())


@st.composite
def sweep_tables(draw) -> dict:
    """A parsed sweep spec: known and unknown keys, good and bad values, small grids."""
    grid = {}
    for axis in draw(st.lists(st.sampled_from(GRID_AXES + GRID_OPTIONAL + ("depht",)), unique=True, max_size=8)):
        values = AXIS_VALUES.get(axis, SCALARS)
        grid[axis] = draw(st.one_of(st.lists(values, min_size=1, max_size=3), values, st.lists(values, max_size=3)))
    if draw(st.integers(0, 3)):  # mostly complete grids, so parsing gets past the required axes
        for axis in GRID_AXES:
            grid.setdefault(axis, [draw(AXIS_VALUES[axis])])
    data = {k: draw(v) for k, v in DATA_VALUES.items() if draw(st.booleans())}
    train = {k: draw(v) for k, v in TRAIN_VALUES.items() if draw(st.booleans())}
    raw = {"grid": grid, "data": data, "train": train}
    if draw(st.booleans()):
        raw["name"] = draw(_mostly(st.text(min_size=1, max_size=8)))
    if not draw(st.integers(0, 4)):
        raw[draw(st.sampled_from(["grid", "data", "train", "extra"]))] = draw(VALUES)
    if not draw(st.integers(0, 4)) and isinstance(raw["train"], dict):
        raw["train"][draw(st.sampled_from(["epoch", "lr"]))] = draw(SCALARS)
    return raw


@PROPERTY
@given(raw=sweep_tables())
def test_sweep_spec_tables_give_a_spec_whose_runs_are_valid_or_one_line_error(raw):
    try:
        spec = parse_spec(raw)
    except InitlabError as err:
        _one_line(err)
        return
    event("accepted")
    assert isinstance(spec, SweepSpec)
    runs = spec.runs()
    assert runs and all(RunSpec(**r.to_dict()) == r for r in runs[:3])  # each run is a valid RunSpec


TOML_LINES = ['[grid]', 'init = ["he_normal", "zeros"]', 'activation = ["relu"]', 'depth = [1, 2]', 'width = [4]',
              'seed = [0]', '[data]', 'name = "moons"', 'n_samples = 50', '[train]', 'epochs = 2']
TOML_JUNK = st.sampled_from(['epochs = 0', 'name = "x"', 'depth = [1e308]', 'width = "w"', '[grid]', 'x = 1',
                             'init = [{name = "normal", std = -1}]', 'a = [[[[[[]]]]]]', 'b = {c = {d = 1}}',
                             '\x00', 'seed = [99999999999999999999]', 'seed = [0, 0]', '"', 'width = []'])


@st.composite
def toml_texts(draw) -> str:
    """A valid spec's lines with some dropped, some doubled and junk lines inserted."""
    lines = []
    for line in TOML_LINES:
        if draw(st.integers(0, 9)):
            lines.append(line)
        if not draw(st.integers(0, 5)):
            lines.append(draw(TOML_JUNK))
    return "\n".join(lines) + "\n"


TOML_TEXT = st.one_of(toml_texts(), toml_texts(), st.text(max_size=300))


@PROPERTY
@given(text=TOML_TEXT)
def test_sweep_spec_files_of_any_text_parse_or_fail_in_one_line(tmp_path_factory, text):
    from initlab.experiments.sweep_spec import load_spec

    path = tmp_path_factory.mktemp("spec") / "s.toml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        spec = load_spec(path)
    except InitlabError as err:
        _one_line(err)
        return
    event("accepted")
    assert isinstance(spec, SweepSpec)


# ------------------------------------------------------------------ initializer specs
PARAM_NAMES = st.sampled_from(["scale", "mode", "distribution", "std", "mean", "low", "high", "gain", "value",
                               "sparsity", "negative_slope", "nonlinearity", "activation", "sigma_b2", "a", "b",
                               "max_iter", "tol", "seed", "generator", "name", "foo"])


@PROPERTY
@given(name=st.one_of(st.sampled_from(initializers.names()), st.text(max_size=12)),
       params=st.dictionaries(PARAM_NAMES, SCALARS, max_size=3))
def test_initializer_specs_resolve_and_draw_finite_weights_or_fail_in_one_line(name, params):
    try:
        init = initializers.get(name, **params)
    except InitlabError as err:
        _one_line(err)
        return
    event("accepted")
    assert initializers.get(init.spec).spec == init.spec  # the spec round-trips
    if init.scheme.kind == "data-dependent":
        return  # LSUV needs a model and data; tests/test_lsuv.py covers its draw
    weight = torch.empty(5, 4)
    try:
        init(weight, generator=torch.Generator().manual_seed(0))
    except InitlabError as err:
        _one_line(err)
        return
    assert torch.isfinite(weight).all(), (init.spec, weight)


# ------------------------------------------------------------------ RunSpec
RUN_FIELDS = {
    "dataset": _mostly(st.sampled_from(["moons", "circles", "xor", "data.csv", "digits"]),
                       st.one_of(st.sampled_from(["mons", ""]), SCALARS)),
    "n_samples": _mostly(st.integers(4, 2000), st.one_of(st.integers(-1, 3), INTS, SCALARS)),
    "noise": _mostly(st.floats(0, 1), st.one_of(FLOATS, SCALARS)),
    "data_seed": _mostly(st.integers(0, 2**32 - 1), st.one_of(INTS, SCALARS)),
    "validation_split": _mostly(st.floats(0, 0.5), st.one_of(st.floats(-0.5, 1.5), FLOATS, SCALARS)),
    "activation": _mostly(st.sampled_from(["relu", "tanh", "gelu", "Tanh"]), st.one_of(st.just("sine"), SCALARS)),
    "hidden": _mostly(st.lists(st.integers(1, 64), min_size=1, max_size=4),
                      st.one_of(st.lists(st.integers(-1, 10**6), max_size=4), st.text(max_size=8), INTS, SCALARS)),
    "init": _mostly(st.sampled_from(["he_normal", "zeros", "lsuv", "orthogonal"]),
                    st.one_of(st.dictionaries(PARAM_NAMES, SCALARS, max_size=2), SCALARS)),
    "bias_init": _mostly(st.sampled_from(["zeros", "normal"]), SCALARS),
    "optimizer": _mostly(st.sampled_from(["adam", "sgd", "SGD", "rmsprop"]), st.one_of(st.just("adamw"), SCALARS)),
    "learning_rate": _mostly(st.floats(1e-5, 1.0), st.one_of(FLOATS, SCALARS)),
    "momentum": _mostly(st.floats(0, 0.99), st.one_of(FLOATS, SCALARS)),
    "epochs": _mostly(st.integers(1, 1000), st.one_of(st.integers(-1, 10**8), SCALARS)),
    "batch_size": _mostly(st.integers(1, 256), st.one_of(st.integers(-1, 10**7), SCALARS)),
    "seed": _mostly(st.integers(0, 2**32 - 1), st.one_of(INTS, SCALARS)),
    "init_seed": _mostly(st.integers(0, 2**32 - 1), st.one_of(INTS, SCALARS)),
    "name": _mostly(st.text(max_size=20), SCALARS),
    "unknown": SCALARS,
}


@PROPERTY
@given(fields=st.fixed_dictionaries({}, optional={k: v for k, v in RUN_FIELDS.items() if k != "unknown"})
       | st.fixed_dictionaries({}, optional=RUN_FIELDS))
def test_run_spec_is_valid_and_round_trips_or_fails_in_one_line(fields):
    try:
        spec = RunSpec(**fields)
    except InitlabError as err:
        _one_line(err)
        return
    event("accepted")
    assert RunSpec(**spec.to_dict()) == spec
    assert 0 <= spec.data_seed <= 2**32 - 1 and 0 <= spec.init_seed <= 2**32 - 1
    assert spec.epochs >= 1 and spec.batch_size >= 1 and all(h >= 1 for h in spec.hidden)
    assert math.isfinite(spec.learning_rate) and math.isfinite(spec.noise)


# ------------------------------------------------------------------ the lab's request bodies
server = pytest.importorskip("initlab.server.specs")
BODY_FIELDS = {
    **{k: v for k, v in RUN_FIELDS.items() if k not in ("init", "bias_init", "init_seed", "name")},
    "dataset": st.one_of(st.sampled_from(["moons", "circles", "csv", "digits", "spirals"]), SCALARS),
    "csv": st.one_of(st.none(), csv_texts(), st.text(max_size=50)),
    "weight_init": st.one_of(
        st.fixed_dictionaries({"name": st.sampled_from(["he_normal", "lsuv", "normal", "zero"])},
                              optional={"params": st.dictionaries(PARAM_NAMES, SCALARS, max_size=3)}),
        VALUES),
    "bias_init": st.one_of(st.fixed_dictionaries({"name": st.sampled_from(["zeros", "normal", "orthogonal"])}), VALUES),
    "inits": st.lists(
        st.fixed_dictionaries({"name": st.sampled_from(["he_normal", "zeros", "lsuv", "glorot_uniform"])}), max_size=5),
}


@PROPERTY
@given(body=st.fixed_dictionaries({}, optional=BODY_FIELDS), compare=st.booleans())
def test_lab_bodies_give_run_specs_within_the_lab_limits_or_one_line_errors(body, compare):
    """As the lab validates a body: pydantic's parse (a 422 listing each field), then ``specs()``,
    which must give RunSpecs the lab can run, or one initlab error line."""
    model = server.CompareSpec if compare else server.TrainSpec
    if compare:
        body.pop("weight_init", None)
    else:
        body.pop("inits", None)
    try:
        parsed = model.model_validate(body)
    except pydantic.ValidationError as err:
        assert err.errors()  # the lab's 422: one entry per field
        event("rejected: 422")
        return
    try:
        specs = parsed.specs()
    except InitlabError as err:
        _one_line(err)
        return
    event("accepted")
    assert specs and all(isinstance(s, RunSpec) for s in specs)
    for spec in specs:
        assert RunSpec(**spec.to_dict()) == spec
        assert 0 <= spec.data_seed <= 2**32 - 1  # numpy's seed range: no 500 when the data is drawn
