"""Sweep specs, the runner, results and the sweep/results/plot commands."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

import initlab.results
from initlab import ValidationError, apply_init, datasets
from initlab.cli.main import main
from initlab.experiments import load_spec, make_batches, parse_spec, run_sweep
from initlab.models import MLP
from initlab.training import Trainer

SMALL = """
name = "small"
[data]
name = "moons"
n_samples = 120
noise = 0.2
[grid]
init = ["zeros", "xavier_uniform", "he_normal"]
activation = ["relu", "tanh"]
depth = [1, 2]
width = [6]
seed = [0, 1]
[train]
epochs = 6
"""


@pytest.fixture()
def spec_file(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(SMALL)
    return path


def _raw(**tables):
    raw = {"grid": {"init": ["he_normal"], "activation": ["relu"], "depth": [1], "width": [4], "seed": [0]}}
    for table, values in tables.items():
        raw.setdefault(table, {}).update(values)
    return raw


@pytest.mark.parametrize("tables, message", [
    ({"grid": {"inits": ["he_normal"]}}, "unknown key 'grid.inits' in the sweep spec; did you mean 'init'?"),
    ({"train": {"epoch": 3}}, "unknown key 'train.epoch' in the sweep spec; did you mean 'epochs'?"),
    ({"data": {"nosie": 0.1}}, "unknown key 'data.nosie'"),
    ({"grid": {"depth": []}}, "grid.depth is empty"),
    ({"grid": {"init": ["he_norml"]}}, "grid.init: unknown initializer 'he_norml'; did you mean 'he_normal'?"),
    ({"grid": {"activation": ["rleu"]}}, "grid.activation: unknown activation 'rleu'; did you mean 'relu'?"),
    ({"data": {"name": "moon"}}, "data.name: unknown dataset 'moon'; did you mean 'moons'?"),
    ({"train": {"optimizer": "adamw"}}, "train.optimizer: unknown optimizer 'adamw'"),
    ({"data": {"noise": -1}}, "data.noise must be a number in \\[0.0, 10.0\\], got -1"),
    ({"grid": {"depth": [101]}}, "grid.depth must be an integer in \\[1, 100\\], got 101"),
    ({"grid": {"seed": [2**32]}}, "grid.seed must be an integer in \\[0, 4294967295\\], got 4294967296"),
    ({"grid": {"width": [0]}}, "grid.width must be an integer in \\[1, 100000\\], got 0"),
])
def test_bad_specs_are_rejected_naming_the_key(tables, message):
    with pytest.raises(ValidationError, match=message):
        parse_spec(_raw(**tables))


def test_missing_axis_and_unknown_table_are_rejected():
    raw = _raw()
    del raw["grid"]["seed"]
    with pytest.raises(ValidationError, match="grid.seed is missing"):
        parse_spec(raw)
    with pytest.raises(ValidationError, match="unknown key 'trian'"):
        parse_spec({**_raw(), "trian": {}})


def test_grid_expands_and_batches_by_architecture(spec_file):
    spec = load_spec(spec_file)
    runs = spec.runs()
    assert len(runs) == 3 * 2 * 2 * 1 * 2
    assert {r.init for r in runs} == {"zeros", "glorot_uniform", "he_normal"}  # aliases canonical
    batches = make_batches(runs)
    assert len(batches) == 4 and all(len(b.specs) == 6 for b in batches)  # activation x depth
    assert len(make_batches(runs, max_batch=4)) == 8


def test_run_id_ignores_spelling_and_changes_with_parameters():
    a = parse_spec(_raw(grid={"init": ["xavier_uniform"]})).runs()[0]
    b = parse_spec(_raw(grid={"init": ["glorot_uniform"]})).runs()[0]
    c = parse_spec(_raw(grid={"init": ["glorot_uniform"]}, train={"learning_rate": 0.01})).runs()[0]
    assert a.run_id == b.run_id != c.run_id


@pytest.mark.slow  # measured 9-17 s on 2 busy cores
def test_sweep_stores_what_a_single_trainer_computes(spec_file, tmp_path):
    store = tmp_path / "s.db"
    report = run_sweep(spec_file, store, device="cpu")
    assert (report.total, report.trained, report.skipped) == (24, 24, 0)
    df = initlab.results.load(store, history=True)
    assert len(df) == 24 and df["run_id"].is_unique and set(df["status"]) == {"finished"}
    row = df[(df.init == "he_normal") & (df.activation == "tanh") & (df.depth == 2) & (df.init_seed == 1)].iloc[0]
    ds = datasets.load("moons", 120, 0.2, 0)
    Xt, yt, Xv, yv = datasets.validation_split(ds.X, ds.y, 0.2)
    model = apply_init(MLP([2, 6, 6, 1], "tanh"), "he_normal", "zeros", generator=1)
    single = Trainer(model, epochs=6, seed=1).fit(Xt, yt, Xv, yv)  # grid seed 1: init and order seed 1
    assert (row["init_seed"], row["order_seed"], row["data_seed"], row["trainer"]) == (1, 1, 0, "batched")
    np.testing.assert_allclose(row["history"]["loss"], single.history_["loss"], rtol=1e-5)
    assert row["val_accuracy"] == pytest.approx(single.history_["val_accuracy"][-1], rel=1e-5)
    assert row["diagnostics_init"]["verdicts"] and row["diagnostics"]["layers"][0]["units"] == 6
    zeros = df[(df.init == "zeros") & (df.activation == "relu")].iloc[0]
    assert "dead_units" in zeros["diagnostics_init"]["codes"]  # the diagnostics summary is real
    agg = initlab.results.aggregate(df)
    assert len(agg) == 12 and set(agg["n"]) == {2}
    assert {"val_accuracy_mean", "val_accuracy_std"} <= set(agg.columns)


@pytest.mark.slow  # measured 9-17 s on 2 busy cores
def test_rerun_skips_and_shared_runs_are_not_recomputed(spec_file, tmp_path):
    store = tmp_path / "s.db"
    run_sweep(spec_file, store, device="cpu")
    again = run_sweep(spec_file, store, device="cpu")
    assert (again.trained, again.skipped) == (0, 24)
    bigger = tmp_path / "bigger.toml"
    bigger.write_text(SMALL.replace("seed = [0, 1]", "seed = [0, 1, 2]").replace('"small"', '"bigger"'))
    report = run_sweep(bigger, store, device="cpu")
    assert (report.trained, report.skipped) == (12, 24)
    con = sqlite3.connect(store)
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 36
    assert con.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0] == 2
    counts = dict(con.execute("SELECT spec_hash, COUNT(*) FROM sweep_runs GROUP BY spec_hash").fetchall())
    assert sorted(counts.values()) == [24, 36]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert len(initlab.results.load(store, spec_hash=load_spec(spec_file).spec_hash)) == 24


@pytest.mark.slow  # measured 9-17 s on 2 busy cores
def test_cli_sweep_results_plot(spec_file, tmp_path, capsys):
    store = tmp_path / "cli.db"
    assert main(["sweep", str(spec_file), "--store", str(store), "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["trained"] == 24
    assert main(["results", "--store", str(store), "--format", "csv", "--by", "init"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("init,val_accuracy_mean") and len(lines) == 4
    assert main(["results", "--store", str(store), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 12 and all(r["n"] == 2 for r in records)
    assert main(["results", "--store", str(store)]) == 0
    assert "mean ± std over seeds" in capsys.readouterr().out
    heat, curves = tmp_path / "heat.png", tmp_path / "curves.png"
    assert main(["plot", "--store", str(store), "--out", str(heat)]) == 0
    assert main(["plot", "--store", str(store), "--kind", "curves", "--where", "depth=2", "--out", str(curves)]) == 0
    for png in (heat, curves):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_cli_rejects_bad_input_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL.replace("depth = [1, 2]", "depht = [1, 2]"))
    assert main(["sweep", str(bad), "--store", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'grid.depht'" in err and "did you mean 'depth'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()  # rejected before any work
    assert main(["results", "--store", str(tmp_path / "missing.db")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sweep", str(bad).replace("bad", "nope"), "--store", str(tmp_path / "x.db")]) == 2
