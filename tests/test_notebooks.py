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


PROBE = "PROBE "  # the line the appended cell prints; the notebooks themselves print only readable text

# One extra code cell per notebook, appended at execution time (never in the notebook file), that
# prints the notebook's own variables as JSON for the test to read.
PROBES = {
    NAMES[0]: """
import json as _json, sys as _sys
print("PROBE", _json.dumps({
    "executable": _sys.executable, "shape": list(X.shape), "classes": list(classes),
    "verdicts": {n: list(r.init_diagnosis.codes) for n, r in runs.items()},
    "findings": {n: findings(r).verdict for n, r in runs.items()}, "rows": rows}))
""",
    NAMES[1]: """
import json as _json, sys as _sys
print("PROBE", _json.dumps({
    "executable": _sys.executable, "backend": keras.backend.backend(),
    "layers": [s.name for s in relu_diagnosis.layers], "first": first,
    "verdicts": {"relu": list(relu_diagnosis.codes), "sigmoid": list(sigmoid_diagnosis.codes),
                 "he_normal": list(he_diagnosis.codes)},
    "steps": relu_monitor.steps, "dead": relu_monitor.series("dead_fraction")[0].tolist(),
    "grad": relu_monitor.series("grad_norm")[0].tolist(),
    "distinct": [after.layers[0].distinct_units, after.layers[0].units], "rows": rows}))
""",
    NAMES[2]: """
import json as _json
print("PROBE", _json.dumps({
    "runs": len(df), "accuracy": df.groupby("init")["val_accuracy"].mean().round(4).to_dict(),
    "critical": {k: round(v, 4) for k, v in crit.items()},
    "phases": [MeanField("tanh", sw2, 0.05).phase for sw2 in (1.0, crit["tanh"], 3.0)]}))
""",
}


@functools.cache
def _executed(name: str, scratch: str) -> tuple[str, list, dict]:
    """Run notebook ``name`` in a fresh kernel with its probe cell appended; returns (the text the
    notebook's own cells printed, its executed cells, the probe's JSON)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBES[name]))
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
    probe = nb.cells.pop()
    probed = [o["text"] for o in probe.outputs if o.output_type == "stream" and o.get("name") == "stdout"]
    assert len(probed) == 1 and probed[0].startswith(PROBE), probe.outputs
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.get("name") == "stdout")
    return text, nb.cells, json.loads(probed[0][len(PROBE):])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("notebooks"))


HOOKS = re.compile(r"^(EXECUTABLE|DATA|BACKEND|LAYERS|VERDICT|FINDING|TABLE|STEPS|DEAD|GRAD|DISTINCT|RUNS|"
                   r"MEAN_VAL_ACCURACY|CRITICAL|PHASE|PROBE)\b", re.M)


def _no_hooks(text: str) -> None:
    """What a learner reads is sentences and tables, not lines left for a test to parse."""
    assert not HOOKS.search(text), HOOKS.search(text)


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
    text, cells, got = _executed(NAMES[0], scratch)
    _no_hooks(text)
    assert Path(got["executable"]).resolve() == Path(sys.executable).resolve()
    assert got["shape"] == [100, 2] and got["classes"] == ["0", "1"]
    assert got["verdicts"] == {"zeros + relu": ["dead_units"], "zeros + sigmoid": ["symmetry"],
                               "he_normal + relu": ["healthy"], "glorot_normal + sigmoid": ["healthy"]}
    for name, codes in got["verdicts"].items():  # the readable line the learner sees
        assert f"{name}: {', '.join(codes)}" in text.splitlines()
    rows = {r["run"]: r for r in got["rows"]}
    zero_relu, zero_sigmoid = rows["zeros + relu"], rows["zeros + sigmoid"]
    assert zero_relu["dead_units_after"] == 10 and zero_relu["distinct_units_after"] == 1
    assert zero_sigmoid["distinct_units_after"] == 1 and zero_sigmoid["dead_units_after"] == 0
    for row in (zero_relu, zero_sigmoid):  # one class predicted everywhere: accuracy is that class's share
        assert row["val_accuracy"] in _validation_shares()
    for fixed in ("he_normal + relu", "glorot_normal + sigmoid"):
        assert rows[fixed]["distinct_units_after"] == 10
        assert rows[fixed]["val_accuracy"] > max(_validation_shares())
    assert "Every hidden unit dead" in got["findings"]["zeros + relu"]
    assert got["findings"]["zeros + sigmoid"].startswith("Symmetric after")
    assert all(f"{name}: {finding}" in text for name, finding in got["findings"].items())
    assert _images(cells) == 4  # the decision boundaries


@pytest.mark.slow  # a fresh kernel runs the notebook (25-35 s)
def test_keras_notebook(scratch):
    text, cells, got = _executed(NAMES[1], scratch)
    _no_hooks(text)
    assert Path(got["executable"]).resolve() == Path(sys.executable).resolve()
    assert got["backend"] == "torch"
    assert got["layers"] == ["dense", "dense_1"] and got["first"] == "dense"
    assert got["verdicts"] == {"relu": ["dead_units"], "sigmoid": ["symmetry"], "he_normal": ["healthy"]}
    source = "\n".join(c.source for c in cells if c.cell_type == "code")
    epochs = int(re.search(r"^EPOCHS = (\d+)", source, re.M).group(1))
    every = int(re.search(r"Monitor\(every=(\d+)\)", source).group(1))
    recorded = math.ceil(3 * epochs / every)  # 80 training rows: 3 minibatches of 32 per epoch
    assert len(got["steps"]) == recorded
    assert got["dead"] == [1.0] * recorded and got["grad"] == [0.0] * recorded
    assert f"{recorded} steps recorded" in text
    assert "Layer dense: 100% of its units dead, largest weight-gradient norm 0." in text
    assert got["distinct"] == [1, 10]
    assert "After training: 1 distinct hidden units of 10." in text
    rows = {r["model"]: r for r in got["rows"]}
    assert [rows[m]["verdict_at_init"] for m in ("zeros + relu", "zeros + sigmoid", "he_normal + relu")] == \
        ["dead_units", "symmetry", "healthy"]
    assert rows["zeros + relu"]["val_accuracy"] in _validation_shares()
    assert rows["zeros + relu"]["val_loss"] == pytest.approx(math.log(2), abs=1e-3)  # outputs stay at P = 0.5
    assert rows["he_normal + relu"]["val_accuracy"] > max(_validation_shares())
    assert _images(cells) == 2  # the monitor's heat map and the decision boundaries


@pytest.mark.slow  # a fresh kernel runs the notebook (25-35 s)
def test_sweeps_and_theory_notebook(scratch):
    from initlab.theory import critical_sigma_w2

    text, cells, got = _executed(NAMES[2], scratch)
    _no_hooks(text)
    assert got["runs"] == 24
    accuracy = got["accuracy"]
    assert accuracy["zeros"] <= max(_validation_shares())
    assert accuracy["he_normal"] > accuracy["zeros"] and accuracy["glorot_normal"] > accuracy["zeros"]
    assert got["critical"]["relu"] == 2.0
    assert got["critical"]["tanh"] == round(critical_sigma_w2("tanh", 0.05), 4)
    assert got["phases"] == ["ordered", "critical", "chaotic"]
    phases = [line.split(": ")[1].split(",")[0] for line in text.splitlines() if line.startswith("tanh sigma_w2")]
    assert phases == got["phases"]  # what the learner reads is what was measured
    assert _images(cells) == 1  # the phase diagram
