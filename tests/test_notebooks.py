"""Every notebook in examples/notebooks runs (nbclient, the python3 kernel on this interpreter) and
prints what its run measured; the shipped ushape.csv is what make_ushape.py writes."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "examples" / "notebooks"
NAMES = ["01_classic_experiment.ipynb", "02_keras_notebook.ipynb", "03_sweeps_and_theory.ipynb"]


@functools.cache
def _executed(name: str, scratch: str) -> tuple[str, list]:
    """Run notebook ``name`` in a fresh kernel; returns (all printed text, the executed cells)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys; print('EXECUTABLE', sys.executable)"))
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p),
           "KERAS_HOME": str(Path(scratch) / "keras"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(NOTEBOOKS)}})
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.get("name") == "stdout")
    return text, nb.cells


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("notebooks"))


def _line(text: str, prefix: str) -> str:
    found = [line[len(prefix):].strip() for line in text.splitlines() if line.startswith(prefix)]
    assert found, f"no line starting with {prefix!r}"
    return found[0]


def _validation_shares() -> set[float]:
    """The shares of each class among the last 20 % of ushape.csv's rows (Keras' validation_split)."""
    classes = np.loadtxt(NOTEBOOKS / "ushape.csv", delimiter=",", skiprows=1)[:, 2]
    val = classes[int(len(classes) * 0.8):]
    return {round(float((val == c).mean()), 4) for c in (0, 1)}


def _images(cells) -> int:
    return sum("image/png" in o.get("data", {}) for c in cells if c.cell_type == "code" for o in c.outputs)


def test_committed_notebooks_are_clean_and_use_the_shipped_csv():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), name
        assert any("ushape.csv" in c.source for c in code), name


def test_ushape_csv_is_what_the_script_writes(tmp_path):
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        from make_ushape import write_ushape
    finally:
        sys.path.remove(str(NOTEBOOKS))
    written = write_ushape(tmp_path / "u.csv")
    assert written.read_bytes() == (NOTEBOOKS / "ushape.csv").read_bytes()
    lines = written.read_text().splitlines()
    assert lines[0] == "X,Y,class" and len(lines) == 101
    assert sorted({line.rsplit(",", 1)[1] for line in lines[1:]}) == ["0", "1"]


@pytest.mark.slow  # a fresh kernel runs the notebook (25-35 s)
def test_classic_notebook(scratch):
    text, cells = _executed(NAMES[0], scratch)
    assert Path(_line(text, "EXECUTABLE")).resolve() == Path(sys.executable).resolve()
    assert _line(text, "DATA").startswith("(100, 2) classes: ['0', '1']")
    assert _line(text, "VERDICT zeros + relu:") == "['dead_units']"
    assert _line(text, "VERDICT zeros + sigmoid:") == "['symmetry']"
    assert _line(text, "VERDICT he_normal + relu:") == "['healthy']"
    assert _line(text, "VERDICT glorot_normal + sigmoid:") == "['healthy']"
    rows = {r["run"]: r for r in json.loads(_line(text, "TABLE"))}
    zero_relu, zero_sigmoid = rows["zeros + relu"], rows["zeros + sigmoid"]
    assert zero_relu["dead_units_after"] == 10 and zero_relu["distinct_units_after"] == 1
    assert zero_sigmoid["distinct_units_after"] == 1 and zero_sigmoid["dead_units_after"] == 0
    for row in (zero_relu, zero_sigmoid):  # one class predicted everywhere: accuracy is that class's share
        assert row["val_accuracy"] in _validation_shares()
    for fixed in ("he_normal + relu", "glorot_normal + sigmoid"):
        assert rows[fixed]["distinct_units_after"] == 10
        assert rows[fixed]["val_accuracy"] > max(_validation_shares())
    assert "Every hidden unit dead" in _line(text, "FINDING zeros + relu:")
    assert _line(text, "FINDING zeros + sigmoid:").startswith("Symmetric after")
    assert _images(cells) == 4  # the decision boundaries


@pytest.mark.slow  # a fresh kernel runs the notebook (25-35 s)
def test_keras_notebook(scratch):
    text, cells = _executed(NAMES[1], scratch)
    assert Path(_line(text, "EXECUTABLE")).resolve() == Path(sys.executable).resolve()
    assert _line(text, "BACKEND") == "torch"
    assert _line(text, "LAYERS") == "['dense', 'dense_1']"
    assert _line(text, "VERDICT relu:") == "['dead_units']"
    assert _line(text, "VERDICT sigmoid:") == "['symmetry']"
    assert _line(text, "VERDICT he_normal:") == "['healthy']"
    source = "\n".join(c.source for c in cells if c.cell_type == "code")
    epochs = int(re.search(r"^EPOCHS = (\d+)", source, re.M).group(1))
    every = int(re.search(r"Monitor\(every=(\d+)\)", source).group(1))
    recorded = math.ceil(3 * epochs / every)  # 80 training rows: 3 minibatches of 32 per epoch
    assert _line(text, "STEPS").endswith(f"... {recorded} recorded")
    dead = json.loads(_line(text, "DEAD dense"))
    grads = json.loads(_line(text, "GRAD dense"))
    assert dead == [1.0] * recorded and grads == [0.0] * recorded
    assert _line(text, "DISTINCT after training:") == "1 of 10"
    rows = {r["model"]: r for r in json.loads(_line(text, "TABLE"))}
    assert [rows[m]["verdict_at_init"] for m in ("zeros + relu", "zeros + sigmoid", "he_normal + relu")] == \
        ["dead_units", "symmetry", "healthy"]
    assert rows["zeros + relu"]["val_accuracy"] in _validation_shares()
    assert rows["zeros + relu"]["val_loss"] == pytest.approx(math.log(2), abs=1e-3)  # outputs stay at P = 0.5
    assert rows["he_normal + relu"]["val_accuracy"] > max(_validation_shares())
    assert _images(cells) == 2  # the monitor's heat map and the decision boundaries


@pytest.mark.slow  # a fresh kernel runs the notebook (25-35 s)
def test_sweeps_and_theory_notebook(scratch):
    from initlab.theory import critical_sigma_w2

    text, cells = _executed(NAMES[2], scratch)
    assert _line(text, "RUNS") == "24"
    accuracy = json.loads(_line(text, "MEAN_VAL_ACCURACY"))
    assert accuracy["zeros"] <= max(_validation_shares())
    assert accuracy["he_normal"] > accuracy["zeros"] and accuracy["glorot_normal"] > accuracy["zeros"]
    critical = json.loads(_line(text, "CRITICAL"))
    assert critical["relu"] == 2.0
    assert critical["tanh"] == round(critical_sigma_w2("tanh", 0.05), 4)
    phases = [line.split(": ")[1].split(",")[0] for line in text.splitlines() if line.startswith("PHASE")]
    assert phases == ["ordered", "critical", "chaotic"]
    assert _images(cells) == 1  # the phase diagram
