"""The sweep's work outside the trainer, restructured for speed (issue 25.3), gives the numbers
and specs the plain per-run code gave: each fast path against the plain one, computed here."""

from __future__ import annotations

import numpy as np
import pytest

from initlab.experiments.execute import distinct_per_row
from initlab.experiments.sweep_spec import parse_spec
from initlab.runspec import RunSpec


@pytest.mark.parametrize("kind", ["bool", "classes", "linear"])
def test_distinct_per_row_is_len_of_unique_for_each_row(kind):
    rng = np.random.default_rng(0)
    if kind == "bool":
        values = rng.random((300, 41)) > rng.random((300, 1))  # some rows all True or all False
        values[:3] = True
    elif kind == "classes":
        values = rng.integers(0, rng.integers(1, 6, size=(300, 1)), size=(300, 41))  # 1 to 5 classes per row
    else:
        values = np.zeros((7, 1))  # a regression's placeholder: one "class"
    expected = [len(np.unique(row)) for row in values]
    assert distinct_per_row(values).tolist() == expected


def test_grid_runs_equal_runs_built_and_checked_one_by_one():
    spec = parse_spec({
        "name": "g",
        "data": {"name": "moons", "n_samples": 60},
        "grid": {"init": ["he_normal", {"name": "normal", "std": 0.5}], "activation": ["relu", "tanh"],
                 "depth": [1, 2], "width": [3], "seed": [0, 7], "optimizer": ["adam", "sgd"]},
        "train": {"epochs": 2},
    })
    runs = spec.runs()
    assert len(runs) == 2 * 2 * 2 * 2 * 2
    for run in runs:
        rebuilt = RunSpec(**run.to_dict())  # validated from its fields alone
        assert rebuilt == run and rebuilt.run_id == run.run_id and rebuilt.to_dict() == run.to_dict()
        assert run.model_fields_set == set(RunSpec.model_fields)
    sgd = [r for r in runs if r.optimizer == "sgd"]
    assert {r.learning_rate for r in sgd} == {0.01}  # SGD's own default rate (Keras), not Adam's 0.001
    assert len({r.run_id for r in runs}) == len(runs)


@pytest.mark.parametrize("changes", [
    {}, {"init": {"name": "normal", "std": 0.5}, "bias_init": "he_normal"}, {"hidden": (4, 5, 6), "seed": 3},
    {"bias": False, "loss": "mse", "full_batch": True, "init_rows": 10}, {"optimizer": "sgd", "momentum": 0.9},
    {"hidden": (8, 8, 8), "residual": True},
])
def test_run_id_is_the_hash_of_the_dumped_fields(changes):
    """run_id reads the fields directly (no model_dump per call): the same hash as the dump gives."""
    import hashlib
    import json

    spec = RunSpec(**changes)
    params = spec.model_dump(exclude={"name"})
    for key, default in {"bias": True, "loss": "auto", "full_batch": False, "init_rows": None, "residual": False}.items():
        if params[key] == default:
            del params[key]
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    assert spec.run_id == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_cli_sweep_unfreezes_the_collector_after_the_run_and_after_a_failure(tmp_path, capsys):
    """The CLI freezes the imported objects for the sweep (full collections skip them) and leaves
    the process's collector as it found it, also when the sweep fails."""
    import gc
    import json

    from initlab.cli.main import main

    spec = tmp_path / "s.toml"
    spec.write_text('[data]\nname = "moons"\nn_samples = 40\n[grid]\ninit = ["he_normal", "zeros"]\n'
                    'activation = ["relu"]\ndepth = [1]\nwidth = [3]\nseed = [0, 1]\n[train]\nepochs = 2\n')
    assert gc.get_freeze_count() == 0
    assert main(["--threads", "1", "sweep", str(spec), "--store", str(tmp_path / "s.db"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["trained"] == 4
    assert gc.get_freeze_count() == 0
    (tmp_path / "other.db").write_bytes(b"not a database" * 100)
    assert main(["sweep", str(spec), "--store", str(tmp_path / "other.db")]) == 2  # fails inside the frozen span
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("residual", [False, True])
def test_initial_diagnoses_beside_the_fit_equal_those_before_it(residual):
    """The stacked run diagnoses a copy of the initial weights in a second thread while the stack
    trains: the records' initial diagnoses equal diagnosing the untrained stack, computed here first."""
    import importlib

    from initlab.experiments.record import summarize

    execute = importlib.import_module("initlab.experiments.execute")  # the module (the package re-exports a function)

    specs = [RunSpec(init=init, hidden=(6, 6, 6), activation="tanh", seed=seed, epochs=5, residual=residual)
             for init in ("he_normal", "zeros", {"name": "normal", "std": 2.0}) for seed in (0, 1)]
    batch = execute.plan(specs)[0]
    assert len(batch.specs) == len(specs)
    data, split = execute.load_split(specs[0])
    X, y = execute._diagnose_rows(split)
    before = [summarize(d) for d in execute.diagnose_trainer(execute.initialized(specs), X, y)]
    records = execute.run_batch(batch)
    assert [r.diagnostics_init for r in records] == before
    assert records[0].diagnostics != records[0].diagnostics_init  # the end diagnoses are of the trained nets


def test_the_local_executor_pipelines_batches_without_changing_records():
    """LocalExecutor finishes batch k (final diagnoses, records) in a second thread while batch k+1
    trains: the records equal run_batch's, batch by batch, in order."""
    import importlib

    execute = importlib.import_module("initlab.experiments.execute")
    specs = [RunSpec(init=init, hidden=(width,), seed=seed, epochs=4)
             for width in (4, 6, 8) for init in ("he_normal", "zeros") for seed in (0, 1)]
    batches = execute.plan(specs)
    assert len(batches) == 3
    piped = list(execute.LocalExecutor().map(execute.run_batch, batches))
    assert [b for b, _ in piped] == batches
    for (_, got), batch in zip(piped, batches, strict=True):
        want = execute.run_batch(batch)
        strip = ("wall_time",)
        assert [{k: v for k, v in r.to_dict().items() if k not in strip} for r in got] == \
            [{k: v for k, v in r.to_dict().items() if k not in strip} for r in want]
        assert got[0].diagnostics is not None and got[0].diagnostics_init is not None
