"""Bad input on every command: one line on stderr naming the field, exit 2, no traceback, nothing written."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from initlab.cli.main import main

# {T}: a tmp folder holding: model.py (make: a 4-3 MLP), afile (a file), adir/ (a folder), empty.toml, empty.csv, x.npy, tiny.db (one run).
CASES = [
    # rich markup must not eat "[grid]" from the message
    (["sweep", "{T}/empty.toml", "--dry-run"], "has no [grid] table"),
    # sizes and seeds the spec used to accept, then OOM / run for ever / crash in scikit-learn
    (["train", "--hidden", "100000000", "--out", "{T}/o"], "hidden[0] must be an integer in [1, 100000]"),
    (["train", "--epochs", "100000000000", "--out", "{T}/o"], "epochs must be an integer in [1, 1000000]"),
    (["train", "--n-samples", "100000000000", "--out", "{T}/o"], "n_samples must be an integer in [4, 1000000]"),
    (["train", "--data-seed", "-1", "--out", "{T}/o"], "data_seed must be an integer in [0, 4294967295], got -1"),
    (["train", "--seed", "99999999999999999999999", "--out", "{T}/o"], "seed must be an integer in [0, 4294967295]"),
    # an --out that cannot be a folder fails before training
    (["train", "--epochs", "1", "--out", "{T}/afile"], "out '{T}/afile' is a file, not a folder"),
    (["train", "--epochs", "1", "--out", "{T}/afile/sub"], "'{T}/afile' is a file, not a folder"),
    (["reproduce", "--epochs", "1", "--out", "{T}/afile"], "out '{T}/afile' is a file, not a folder"),
    (["doctor", "{T}/model.py:make", "--input-shape", "4", "--out", "{T}/afile"], "is a file, not a folder"),
    # figure paths: a folder, an unknown extension, a parent that is a file
    (["inits", "--plot", "{T}/adir"], "--plot '{T}/adir' is a folder"),
    (["inits", "--plot", "{T}/x.txt"], "needs a figure extension such as .png"),
    (["inits", "--plot", "{T}/afile/x.png"], "'{T}/afile' is a file, not a folder"),
    (["plot", "--store", "{T}/tiny.db", "--out", "{T}/o.jpgg"], "did you mean 'jpg'?"),
    (["theory", "phase-diagram", "--out", "{T}/adir"], "--out '{T}/adir' is a folder"),
    (["theory", "phase-diagram", "--out", "{T}/o.png", "--depth-out", "{T}/d.txt"], "--depth-out '{T}/d.txt' needs"),
    (["theory", "check", "--init", "he_normal", "--depth", "2", "--width", "4", "--out", "{T}/adir"], "is a folder"),
    (["theory", "accuracy-map", "--store", "{T}/tiny.db", "--out", "{T}/adir"], "is a folder"),
    # sweep / results / plot
    (["sweep", "{T}/tiny.toml", "--threads", "-1", "--dry-run"], "--threads must be an integer in [0, inf], got -1"),
    (["results", "--store", "{T}/tiny.db", "--sort", "train_loss_men"], "did you mean 'train_loss_mean'?"),
    (["plot", "--store", "{T}/tiny.db", "--kind", "curves", "--metric", "vall", "--out", "{T}/o.png"],
     "unknown metric 'vall'; did you mean 'val_loss'? (allowed: loss, accuracy, val_loss, val_accuracy)"),
    (["plot", "--store", "{T}/tiny.db", "--kind", "curves", "--where", "depth=x", "--out", "{T}/o.png"],
     "--where depth=x: depth holds int values, e.g. depth=1"),
    # theory
    (["theory", "phase-diagram", "--sigma-w2-max", "0", "--out", "{T}/o.png"], "sigma_w2_max must be > 0.0"),
    (["theory", "check", "--init", '{"name": "normal",', "--depth", "2", "--width", "4"], "not valid JSON"),
    (["theory", "check", "--init", "he_normal", "--depth", "2", "--width", "4", "--seed", "-1"],
     "seed must be an integer in [0, inf], got -1"),
    (["theory", "check", "--init", "he_normal", "--depth", "100000", "--width", "4"], "depth must be an integer in [1, 10000]"),
    (["theory", "accuracy-map", "--results", "{T}/empty.csv", "--out", "{T}/o.png"], "is not a readable CSV: it is empty"),
    (["theory", "accuracy-map", "--results", "{T}/x.npy", "--out", "{T}/o.png"], "is not a readable CSV"),
    # serve: a host that does not resolve (no uvicorn log, no exit 3)
    (["serve", "--host", "999.1.1.1", "--port", "8765"], "host '999.1.1.1' is not an address"),
    # doctor's input kinds: --dtype, --vocab, --output (issue 9)
    (["doctor", "{T}/model.py:make", "--input-shape", "4", "--dtype", "int", "--out", "{T}/o"],
     "unknown dtype 'int' (allowed: float, long)"),
    (["doctor", "{T}/model.py:make", "--input-shape", "4", "--dtype", "lon", "--out", "{T}/o"], "did you mean 'long'?"),
    (["doctor", "{T}/model.py:make", "--input-shape", "4", "--dtype", "long", "--out", "{T}/o"],
     "--dtype long needs --vocab N: the number of token ids the model's embedding accepts"),
    (["doctor", "{T}/model.py:make", "--input-shape", "4", "--dtype", "long", "--vocab", "0", "--out", "{T}/o"],
     "vocab must be an integer in [1, inf], got 0"),
    (["doctor", "{T}/model.py:make", "--input-shape", "4", "--vocab", "9", "--out", "{T}/o"],
     "--vocab is only used with --dtype long"),
    (["doctor", "{T}/model.py:make", "--input-shape", "4", "--output", "logits", "--out", "{T}/o"],
     "output 'logits' was given, but the model returns a plain tensor; drop --output"),
    (["doctor", "{T}/model.py:make", "--input-shape", "4", "--dtype", "long", "--vocab", "9", "--out", "{T}/o"],
     "the model rejected input int64 (64, 4): RuntimeError: mat1 and mat2 must have the same dtype, but got Long "
     "and Float; the model takes float inputs: use --dtype float"),
    # out of memory from a size the user asked for: one line, not torch's traceback
    (["doctor", "{T}/model.py:make", "--input-shape", "4", "--batch", "100000000000000", "--out", "{T}/o"], "out of memory"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    t = tmp_path_factory.mktemp("bad")
    (t / "afile").write_text("hello\n")
    (t / "adir").mkdir()
    (t / "empty.toml").write_text("")
    (t / "model.py").write_text("import torch.nn as nn\n\ndef make():\n    return nn.Sequential(nn.Linear(4, 3), nn.ReLU())\n")
    (t / "empty.csv").write_text("")
    np.save(t / "x.npy", np.zeros((3, 4), dtype=np.float32))
    spec = t / "tiny.toml"
    spec.write_text('[data]\nn_samples = 20\n[grid]\ninit = ["zeros"]\nactivation = ["relu"]\n'
                    "depth = [1]\nwidth = [2]\nseed = [0]\n[train]\nepochs = 1\ndiagnostics = false\n")
    assert main(["sweep", str(spec), "--store", str(t / "tiny.db"), "--json"]) == 0
    return t


@pytest.mark.parametrize("argv, expected", CASES, ids=[" ".join(a[:3]) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2(folder, capsys, argv, expected):
    capsys.readouterr()
    before = sorted(p.name for p in folder.iterdir())
    argv = [a.replace("{T}", str(folder)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert expected.replace("{T}", str(folder)) in lines[0]
    assert "Traceback" not in err
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing half-written


def test_accuracy_map_reads_plain_initializer_names_from_a_store(folder, capsys):
    """A store keeps init_spec as JSON ('"zeros"'); the map used to reject it as an unknown initializer."""
    assert sqlite3.connect(folder / "tiny.db").execute("select count(*) from runs").fetchone()[0] == 1
    out = folder / "map" / "map.png"
    assert main(["theory", "accuracy-map", "--store", str(folder / "tiny.db"), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
