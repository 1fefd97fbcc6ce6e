"""The run core: one spec, one order function, one execute, one record, the same numbers everywhere."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from fastapi.testclient import TestClient

from initlab import ValidationError
from initlab.cli import main
from initlab.experiments import RunSpec, execute, load_specs, run_sweep
from initlab.experiments.execute import plan
from initlab.experiments.record import clean
from initlab.experiments.store import RUN_COLUMNS, STORE_COLUMNS, Store
from initlab.experiments.sweep_spec import parse_spec
from initlab.server import LIMITS, create_app
from initlab.training import minibatch_order

RTOL = 1e-5  # float rounding between the trainers, in the ordered phase


# --------------------------------------------------------------------------- the order function
def _splitmix_order(seed: int, epoch: int, n: int) -> list[int]:
    """The documented order, in plain Python integers (SplitMix64's finaliser, Steele et al. 2014):
    rows sorted by key(seed, epoch, row); an independent reference for the vectorised code."""
    mask, golden = (1 << 64) - 1, 0x9E3779B97F4A7C15

    def mix(x: int) -> int:
        x ^= x >> 30
        x = (x * 0xBF58476D1CE4E5B9) & mask
        x ^= x >> 27
        x = (x * 0x94D049BB133111EB) & mask
        return x ^ (x >> 31)

    stream = mix((mix((seed * golden + epoch) & mask) + golden) & mask)
    keys = [mix(stream ^ ((row * golden) & mask)) for row in range(n)]
    return sorted(range(n), key=keys.__getitem__)


def test_minibatch_orders_of_many_epochs_follow_the_documented_hash():
    from initlab.training.order import minibatch_orders

    seeds, epochs = [5, 0, 2**40, 7], [0, 1, 9, 250]
    many = minibatch_orders(seeds, epochs, 61)
    assert many.shape == (4, 4, 61) and many.dtype == np.int64
    for e, epoch in enumerate(epochs):
        for g, seed in enumerate(seeds):
            assert many[e, g].tolist() == _splitmix_order(seed, epoch, 61)
        assert np.array_equal(many[e], minibatch_order(seeds, epoch, 61))
    assert minibatch_order(7, 9, 61).tolist() == _splitmix_order(7, 9, 61)  # one seed: one row


def test_minibatch_order_is_a_deterministic_permutation_per_seed_and_epoch():
    orders = minibatch_order([0, 1, 2, 0], epoch=3, n=97)
    assert orders.shape == (4, 97) and orders.dtype == np.int64
    for row in orders:
        assert sorted(row.tolist()) == list(range(97))
    assert np.array_equal(orders[0], orders[3])  # same seed, same order
    assert not np.array_equal(orders[0], orders[1])
    assert np.array_equal(minibatch_order(1, 3, 97), orders[1])  # a run's order ignores the other runs
    assert not np.array_equal(minibatch_order(1, 4, 97), orders[1])  # a fresh order every epoch


def test_minibatch_order_looks_uniform():
    # Over many seeds, each row lands in each position about equally often (chi-square, fixed seeds).
    from scipy import stats

    n, seeds = 8, np.arange(4000)
    first = minibatch_order(seeds, epoch=0, n=n)[:, 0]
    counts = np.bincount(first, minlength=n)
    assert stats.chisquare(counts).pvalue > 1e-3
    pairs = minibatch_order(seeds, epoch=0, n=n)[:, :2]  # neighbours are not correlated
    assert stats.pearsonr(pairs[:, 0], pairs[:, 1]).statistic == pytest.approx(-1 / (n - 1), abs=0.05)


# --------------------------------------------------------------------------- the spec
def test_seed_sets_init_and_order_and_names_are_canonical():
    spec = RunSpec(seed=7, init="Xavier_Uniform", optimizer="SGD", learning_rate=None, hidden="8,4")
    assert (spec.init_seed, spec.order_seed, spec.data_seed, spec.seed) == (7, 7, 0, 7)
    assert (spec.init, spec.optimizer, spec.learning_rate, spec.hidden) == ("glorot_uniform", "sgd", 0.01, (8, 4))
    assert RunSpec(**spec.to_dict()) == spec and RunSpec(**spec.to_dict()).run_id == spec.run_id
    assert spec.replace(name="other").run_id == spec.run_id  # the name is a label
    assert spec.replace(order_seed=8).run_id != spec.run_id and spec.replace(order_seed=8).seed is None
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_sweep_runs_are_the_same_specs_train_would_build():
    sweep = parse_spec({"grid": {"init": ["xavier_uniform", {"name": "normal", "std": 0.5}], "activation": ["tanh"],
                                 "depth": [2], "width": [6], "seed": [0, 3], "optimizer": ["sgd", "adam"]}})
    runs = sweep.runs()
    assert len(runs) == 8
    for run in runs:
        rebuilt = RunSpec(**run.to_dict())
        assert rebuilt == run and rebuilt.run_id == run.run_id
    sgd = [r for r in runs if r.optimizer == "sgd"][0]
    assert sgd.learning_rate == 0.01 and sgd.init_seed == sgd.order_seed


def test_lab_limits_are_a_layer_over_the_same_spec():
    spec = RunSpec(hidden=[65])  # a valid run ...
    with pytest.raises(ValidationError, match=r"hidden\[0\]: must be an integer in \[1, 64\], got 65"):
        LIMITS.check(spec)  # ... that the public lab refuses
    with pytest.raises(ValidationError, match=r"n_samples: must be an integer in \[20, 2000\], got 5000"):
        LIMITS.check(RunSpec(n_samples=5000))
    assert LIMITS.check(RunSpec(hidden=[64, 64])).hidden == (64, 64)


# --------------------------------------------------------------------------- one execute
@pytest.mark.parametrize("activation, optimizer, lr", [("relu", "adam", None), ("tanh", "sgd", 0.1),
                                                       ("sigmoid", "rmsprop", None), ("elu", "sgd", 0.05)])
def test_the_trainer_chosen_never_changes_the_numbers(activation, optimizer, lr):
    specs = [RunSpec(name=f"r{i}", activation=activation, optimizer=optimizer, learning_rate=lr, hidden=[8, 8],
                     init=init, init_seed=i, order_seed=i % 2, epochs=8)
             for i, init in enumerate(["he_normal", "glorot_uniform", "lecun_normal"])]
    batched = list(execute(specs))  # one stack
    single = list(execute(specs, monitor=True))  # one Trainer each, with a Monitor
    assert [r.trainer for r in batched] == ["batched"] * 3 and [r.trainer for r in single] == ["single"] * 3
    for b, s in zip(batched, single, strict=False):
        assert b.spec == s.spec
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(b.history[key], s.history[key], rtol=RTOL, atol=1e-7)
        assert b.train_loss == pytest.approx(s.train_loss, rel=RTOL)
        assert b.val_accuracy == pytest.approx(s.val_accuracy, abs=1e-6)
        assert b.diagnostics["codes"] == s.diagnostics["codes"]


def test_plan_groups_compatible_runs_and_monitor_runs_alone():
    specs = [RunSpec(init=i, seed=s, activation=a) for i in ("zeros", "he_normal") for s in (0, 1) for a in ("relu", "tanh")]
    batches = plan(specs)
    assert sorted(len(b.specs) for b in batches) == [4, 4] and {b.trainer for b in batches} == {"batched"}
    assert [len(b.specs) for b in plan(specs, monitor=True)] == [1] * 8


def test_record_dict_is_the_store_row_and_json_clean():
    (record,) = execute([RunSpec(init="zeros", activation="sigmoid", epochs=3)])
    row = record.to_dict()
    assert list(row) == [c for c in RUN_COLUMNS if c not in STORE_COLUMNS]
    json.dumps(row, allow_nan=False)  # no NaN anywhere
    assert row["spec"] == record.spec.to_dict() and row["run_id"] == record.spec.run_id
    assert clean({"a": np.array([1.0, np.nan, np.inf]), "b": np.float32(2.5)}) == {"a": [1.0, None, None], "b": 2.5}


# --------------------------------------------------------------------------- round trips
def test_train_spec_round_trip_from_train_reproduce_and_a_single_record(tmp_path, capsys):
    assert main(["train", "--init", "he_normal", "--activation", "tanh", "--epochs", "5", "--seed", "3",
                 "--data-seed", "2", "--out", str(tmp_path / "a"), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["experiments"][0]
    assert (first["init_seed"], first["order_seed"], first["data_seed"]) == (3, 3, 2)
    assert main(["train", "--spec", str(tmp_path / "a" / "results.json"), "--out", str(tmp_path / "b"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["experiments"][0]
    assert again["history"] == first["history"] and again["run_id"] == first["run_id"]

    assert main(["reproduce", "--epochs", "3", "--only", "zeros_relu,he_relu", "--out", str(tmp_path / "r"), "--json"]) == 0
    reproduced = {e["name"]: e for e in json.loads(capsys.readouterr().out)["experiments"]}
    specs = load_specs(tmp_path / "r" / "results.json", select="he_relu")
    assert [s.name for s in specs] == ["he_relu"]
    assert main(["train", "--spec", str(tmp_path / "r" / "results.json"), "--run", "he_relu",
                 "--out", str(tmp_path / "c"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["experiments"][0]["history"] == reproduced["he_relu"]["history"]


def test_bad_spec_files_are_one_line_errors(tmp_path, capsys):
    not_json = tmp_path / "x.json"
    not_json.write_text("{oops")
    other = tmp_path / "y.json"
    other.write_text(json.dumps({"hello": 1}))
    bad_field = tmp_path / "z.json"
    bad_field.write_text(json.dumps({"experiments": [{"spec": {"epochs": 0}}]}))
    for path, words in [(not_json, "is not a JSON file"), (other, "neither a results.json"),
                        (bad_field, "z.json, run #1: epochs must be an integer in [1, 1000000], got 0"),
                        (tmp_path / "missing.json", "does not exist")]:
        assert main(["train", "--spec", str(path), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "o").exists()


SWEEP = """
name = "same"
[data]
name = "moons"
n_samples = 100
seed = 4
[grid]
init = ["he_normal", "glorot_uniform"]
activation = ["tanh"]
depth = [1]
width = [10]
seed = [5, 6]
[train]
epochs = 12
learning_rate = 0.03
"""


def test_lab_train_and_sweep_cell_agree_and_results_run_feeds_train(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SWEEP)
    store = tmp_path / "s.db"
    run_sweep(tmp_path / "s.toml", store, device="cpu")
    with Store(store) as db:
        (cell_id,) = [r for (r,) in db.conn.execute(
            "SELECT run_id FROM runs WHERE init='he_normal' AND init_seed=6")]
        cell = db.record(cell_id)
    assert (cell["data_seed"], cell["init_seed"], cell["order_seed"], cell["trainer"]) == (4, 6, 6, "batched")

    # the same run from `initlab results --run` fed to `initlab train --spec`
    assert main(["results", "--store", str(store), "--run", cell_id[:8], "--format", "json"]) == 0
    (tmp_path / "run.json").write_text(capsys.readouterr().out)
    assert main(["train", "--spec", str(tmp_path / "run.json"), "--out", str(tmp_path / "t"), "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)["experiments"][0]
    assert trained["run_id"] == cell_id and trained["trainer"] == "single"
    np.testing.assert_allclose(trained["history"]["loss"], cell["history"]["loss"], rtol=RTOL)
    assert trained["val_accuracy"] == pytest.approx(cell["val_accuracy"], abs=1e-6)

    # and from the lab, with the same settings in its request body
    body = {"dataset": "moons", "n_samples": 100, "noise": 0.1, "validation_split": 0.2, "activation": "tanh",
            "hidden": [10], "optimizer": "adam", "learning_rate": 0.03, "epochs": 12, "batch_size": 32,
            "seed": 6, "data_seed": 4, "weight_init": {"name": "he_normal"}}
    with TestClient(create_app(min_run_seconds=0.0)) as client:
        lines = client.post("/api/train", json=body).text.splitlines()
    done = json.loads([line for line in lines if line.startswith("data: ")][-1][len("data: "):])
    lab = done["results"]["experiments"][0]
    assert lab["run_id"] == cell_id and lab["spec"] == {**cell["spec"], "name": lab["name"]}
    np.testing.assert_allclose(lab["history"]["loss"], cell["history"]["loss"], rtol=RTOL)
    # and the lab's download re-runs with `initlab train --spec`
    (tmp_path / "lab.json").write_text(json.dumps(done["results"]))
    assert main(["train", "--spec", str(tmp_path / "lab.json"), "--out", str(tmp_path / "l"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["experiments"][0]
    np.testing.assert_allclose(again["history"]["loss"], cell["history"]["loss"], rtol=RTOL)


def test_results_run_bad_ids_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SWEEP.replace("seed = [5, 6]", "seed = [5]").replace("epochs = 12", "epochs = 1"))
    store = tmp_path / "s.db"
    run_sweep(tmp_path / "s.toml", store, device="cpu")
    assert main(["results", "--store", str(store), "--run", "zzzz"]) == 2
    assert "no run 'zzzz'" in capsys.readouterr().err


def test_the_sweep_path_starts_without_the_report_side():
    """`initlab sweep` loads neither matplotlib, pandas, scikit-learn nor FastAPI (seconds of every start)."""
    import subprocess
    import sys

    code = ("import sys, initlab.experiments, initlab.experiments.sweep; from initlab.cli.main import load_commands; "
            "load_commands(); "
            "print(sorted(m for m in ('matplotlib', 'pandas', 'sklearn', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_stores_array_rows_hold_the_same_values_as_the_json_dict(tmp_path):
    (record,) = execute([RunSpec(init="he_normal", activation="tanh", epochs=4, validation_split=0.25)])
    with Store(tmp_path / "s.db") as db:
        db.commit_batch("h", [record.to_dict(arrays=True)])
        stored = db.record(record.run_id)
    plain = json.loads(json.dumps(record.to_dict()))
    assert {k: stored[k] for k in plain} == plain  # every column: the results.json entry's value
