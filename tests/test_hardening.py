"""Issue #21 (items 3, 4, 5, 7, 8): hostile and unlucky input gives one line, exit 2, nothing written;
reading a store never writes; messages say what happened."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from initlab import DataError
from initlab.cli.main import main
from initlab.datasets import load_csv
from initlab.experiments import RunSpec, Store, run_sweep
from initlab.experiments import sweep as sweep_module
from initlab.experiments.execute import Batch, run_batch
from initlab.experiments.executors import RayExecutor
from initlab.experiments.rerun import compare_rerun
from initlab.training import fused

SPEC = """
[data]
name = "moons"
n_samples = 100
[grid]
init = ["he_normal", "zeros"]
activation = ["relu"]
depth = [1, 2]
width = [4]
seed = [0, 1]
[train]
epochs = 3
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _csv(path: Path, bad: str, row: int = 3) -> Path:
    rows = ["x,y,class"] + [f"{0.1 * i},{0.2 * i},{i % 2}" for i in range(10)]
    cells = rows[row + 1].split(",")
    rows[row + 1] = ",".join([bad, *cells[1:]])
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def swept(tmp_path) -> Path:
    (tmp_path / "s.toml").write_text(SPEC)
    store = tmp_path / "s.db"
    run_sweep(tmp_path / "s.toml", store, device="cpu")
    return store


# ---------------------------------------------------------------- 21.3: beyond float32
@pytest.mark.parametrize("bad", ["1e308", "-3.5e38", "1e39"])
def test_a_value_beyond_float32_is_a_one_line_error_naming_line_and_column(tmp_path, bad):
    with np.errstate(over="ignore"):
        assert math.isinf(float(np.float32(float(bad))))  # finite in Python, infinite once cast
    with pytest.raises(DataError, match=r"line 5, column 'x': .* beyond float32's range") as err:
        load_csv(_csv(tmp_path / "d.csv", bad))
    assert "\n" not in str(err.value)


def test_the_largest_float32_still_loads(tmp_path):
    X, _, _ = load_csv(_csv(tmp_path / "d.csv", "3.4e38"))
    assert np.isfinite(X).all() and X[3, 0] == np.float32(3.4e38)


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_train_and_reproduce_on_a_float32_overflow_leave_no_out_folder(tmp_path, capsys, command):
    data = _csv(tmp_path / "d.csv", "1e308")
    out = tmp_path / "out"
    args = ["train", "--dataset", str(data)] if command == "train" else ["reproduce", "--data", str(data)]
    assert main([*args, "--epochs", "1", "--out", str(out)]) == 2
    assert "beyond float32" in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_a_sweep_on_a_float32_overflow_creates_no_store(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", "1e308")
    (tmp_path / "s.toml").write_text(SPEC.replace('name = "moons"', f'name = "{data}"'))
    assert main(["sweep", str(tmp_path / "s.toml"), "--store", str(tmp_path / "s.db")]) == 2
    assert "beyond float32" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "s.db").exists()


def test_the_lab_refuses_an_upload_beyond_float32(tmp_path):
    from fastapi.testclient import TestClient

    from initlab.server import create_app

    text = _csv(tmp_path / "d.csv", "1e308").read_bytes()
    with TestClient(create_app(min_run_seconds=0.0)) as client:
        response = client.post("/api/datasets/csv", files={"file": ("d.csv", text, "text/csv")})
    assert response.status_code == 422 and "beyond float32" in str(response.json()["detail"])


# ---------------------------------------------------------------- 21.4: one line, exit 2
def test_a_full_disk_during_a_sweep_says_the_store_survived_and_how_to_resume(tmp_path, capsys, monkeypatch):
    (tmp_path / "s.toml").write_text(SPEC)
    store = tmp_path / "s.db"

    class Capped(Store):  # SQLite's own SQLITE_FULL, as on a full disk: the store may grow by 6 pages
        def __init__(self, path, readonly=False):
            super().__init__(path, readonly)
            n = self.conn.execute("PRAGMA page_count").fetchone()[0]
            self.conn.execute(f"PRAGMA max_page_count = {n + 6}")

    monkeypatch.setattr(sweep_module, "Store", Capped)
    assert main(["sweep", str(tmp_path / "s.toml"), "--store", str(store), "--max-batch", "2"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "database or disk is full" in line and "run the same command again to resume" in line
    kept = sqlite3.connect(store).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert 0 < kept < 8 and f"survived with {kept} of 8 runs" in line
    monkeypatch.setattr(sweep_module, "Store", Store)
    assert main(["sweep", str(tmp_path / "s.toml"), "--store", str(store), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["skipped"], report["trained"]) == (kept, 8 - kept)
    run_sweep(tmp_path / "s.toml", tmp_path / "whole.db", device="cpu")  # uninterrupted: the same numbers
    query = "SELECT run_id, val_loss FROM runs ORDER BY run_id"
    whole = sqlite3.connect(tmp_path / "whole.db").execute(query).fetchall()
    assert sqlite3.connect(store).execute(query).fetchall() == whole


def test_a_non_utf8_sweep_spec_is_one_line(tmp_path, capsys):
    (tmp_path / "s.toml").write_bytes(b'name = "caf\xe9"\n')
    assert main(["sweep", str(tmp_path / "s.toml"), "--store", str(tmp_path / "s.db")]) == 2
    assert "is not UTF-8 text" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "s.db").exists()


def test_deeply_nested_json_and_toml_are_one_line(tmp_path, capsys):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["train", "--spec", str(tmp_path / "deep.json"), "--out", str(tmp_path / "o")]) == 2
    assert "nests too deeply" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()
    (tmp_path / "deep.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert main(["sweep", str(tmp_path / "deep.toml"), "--store", str(tmp_path / "s.db")]) == 2
    assert "nests arrays or tables too deeply" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("damage, expected", [
    ("UPDATE meta SET value='two' WHERE key='schema_version'", "no readable schema version ('two'"),
    ("DELETE FROM meta", "no readable schema version (None"),
    ("ALTER TABLE runs DROP COLUMN spec", "table 'runs' lacks column(s) spec"),
    ("DROP TABLE sweep_runs", "has no table 'sweep_runs'"),
])
def test_results_on_a_damaged_store_is_one_line_and_writes_nothing(swept, capsys, damage, expected):
    con = sqlite3.connect(swept)
    con.execute(damage)
    con.commit()
    con.close()
    before = _sha(swept)
    assert main(["results", "--store", str(swept)]) == 2
    assert expected in _one_error_line(capsys.readouterr().err)
    assert main(["sweep", str(swept.parent / "s.toml"), "--store", str(swept)]) == 2  # nor is it written to
    capsys.readouterr()
    assert _sha(swept) == before


# ---------------------------------------------------------------- 21.5: reading never writes
def _foreign(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("args", [["results"], ["results", "--run", "ab"], ["plot", "--out", "{T}/p.png"],
                                  ["theory", "accuracy-map", "--out", "{T}/m.png"]])
def test_reading_another_programs_sqlite_file_changes_nothing(tmp_path, capsys, args):
    other = _foreign(tmp_path / "other.sqlite")
    before, files = _sha(other), sorted(os.listdir(tmp_path))
    args = [a.replace("{T}", str(tmp_path)) for a in args]
    assert main([*args, "--store", str(other)]) == 2
    assert "not an initlab store (tables: t)" in _one_error_line(capsys.readouterr().err)
    assert _sha(other) == before and sorted(os.listdir(tmp_path)) == files  # no -wal, -shm or figure either


def test_a_sweep_refuses_another_programs_sqlite_file(tmp_path, capsys):
    other = _foreign(tmp_path / "other.sqlite")
    (tmp_path / "s.toml").write_text(SPEC)
    before = _sha(other)
    assert main(["sweep", str(tmp_path / "s.toml"), "--store", str(other)]) == 2
    captured = capsys.readouterr()
    assert "initlab writes only into a new file or its own store" in _one_error_line(captured.err)
    assert captured.out == "" and _sha(other) == before


def test_reading_an_initlab_store_writes_nothing_to_it(swept, capsys):
    before, files = _sha(swept), sorted(os.listdir(swept.parent))
    assert main(["results", "--store", str(swept), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("init,depth,")
    assert _sha(swept) == before and sorted(os.listdir(swept.parent)) == files


def test_a_missing_store_is_not_created_by_reading(tmp_path, capsys):
    assert main(["results", "--store", str(tmp_path / "none.db")]) == 2
    assert "does not exist" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "none.db").exists()


# ---------------------------------------------------------------- 21.7: messages
@pytest.fixture
def read_only_copy(swept, tmp_path):
    """The store in a read-only folder: a read-only bind mount (root ignores file modes), else chmod."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        (folder / "s.db").write_bytes(swept.read_bytes())
        folder.chmod(0o555)
        yield folder / "s.db"
        folder.chmod(0o755)
        return
    src = tmp_path / "src"
    src.mkdir()
    (src / "s.db").write_bytes(swept.read_bytes())
    if subprocess.run(["mount", "--bind", "-o", "ro", str(src), str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root without permission to mount a read-only folder")
    try:
        yield folder / "s.db"
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_store_in_a_read_only_folder_is_read_and_called_read_only_for_writing(read_only_copy, capsys):
    before = _sha(read_only_copy)
    assert main(["results", "--store", str(read_only_copy), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sum(r["n"] for r in rows) == 8
    spec = read_only_copy.parent.parent / "s.toml"
    assert main(["sweep", str(spec), "--store", str(read_only_copy)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "is read-only here" in line and "not an initlab" not in line
    assert _sha(read_only_copy) == before


def test_a_sweep_counts_the_runs_it_committed_not_those_another_sweep_stored_first(swept, monkeypatch):
    # The second sweep saw an empty store when it started (as if both started together), trained
    # all 8 runs, and found each already stored when it came to commit.
    monkeypatch.setattr(Store, "done_ids", lambda self, ids=None: set())
    report = run_sweep(swept.parent / "s.toml", swept, device="cpu")
    assert (report.trained, report.raced, report.diverged) == (0, 8, 0)
    assert sqlite3.connect(swept).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 8


def test_the_json_summary_names_the_executor(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SPEC)
    assert main(["sweep", str(tmp_path / "s.toml"), "--store", str(tmp_path / "s.db"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["executor"] == "local"
    assert RayExecutor().name == "ray" and RayExecutor(address="10.0.0.5:6379").name == "ray at 10.0.0.5:6379"
    assert sweep_module.executor_name(RayExecutor(address="auto")) == "ray at auto"


class _FailingRay:
    def init(self, **kwargs):
        raise ConnectionError("Failed to connect to GCS within 60 seconds.\nmore detail")


@pytest.mark.parametrize("token", [True, False])
def test_a_failed_ray_join_points_at_the_auth_token_when_one_exists(tmp_path, monkeypatch, token):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    if token:
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text("secret")
    with pytest.raises(Exception, match="Failed to connect to GCS") as err:
        RayExecutor(address="10.0.0.5:6379")._join(_FailingRay(), "10.0.0.5:6379", deadline=time.monotonic() + 30)
    assert "\n" not in str(err.value)
    assert ("auth_token" in str(err.value)) is token


def test_a_doctor_factory_that_exits_is_an_error_not_a_silent_success(tmp_path, capsys):
    (tmp_path / "m.py").write_text("import sys\n\ndef make():\n    sys.exit(0)\n")
    out = tmp_path / "out"
    assert main(["doctor", f"{tmp_path / 'm.py'}:make", "--input-shape", "3", "--out", str(out)]) == 2
    assert "called sys.exit(0)" in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.slow
def test_phase_diagram_with_an_absurd_axis_is_one_line_without_warnings(tmp_path):
    out = tmp_path / "p.png"
    code = ("import sys; from initlab.cli.main import main; "
            f"sys.exit(main(['theory', 'phase-diagram', '--sigma-w2-max', '1e308', '--out', {str(out)!r}]))")
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "sigma_w2_max must be a number in [0.0, 10000.0]" in _one_error_line(done.stderr)
    assert not out.exists()


def test_theory_check_with_an_absurd_bias_variance_is_one_line(capsys):
    assert main(["theory", "check", "--init", "he_normal", "--depth", "2", "--width", "4", "--sigma-b2", "1e308"]) == 2
    assert "sigma_b2 must be a number in [0.0, 10000.0]" in _one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------- 21.8: re-runs in the chaotic phase
def _cell(scale: float, seed: int, activation: str = "tanh") -> RunSpec:
    return RunSpec(dataset="moons", n_samples=200, activation=activation, hidden=[16] * 20, epochs=30,
                   init={"name": "variance_scaling", "scale": scale, "mode": "fan_in", "distribution": "normal"},
                   init_seed=seed, order_seed=seed)


@pytest.mark.slow
def test_a_runs_numbers_depend_on_its_batch_on_the_torch_path_only(monkeypatch):
    """Measured, the claim behind the store's batch_runs and train's comparison: on the torch path one
    run trained alone and inside a batch of 4 differ after training, in the chaotic phase (chi_1 > 1)
    and in the ordered one too, so chi_1 at init cannot tell which runs re-run exactly. The fused
    kernel trains each net in its own SIMD lane: there alone and in a batch give the same bits."""
    from initlab.theory import MeanField

    def gaps(scale: float) -> list[float]:
        specs = tuple(_cell(scale, s) for s in range(4))
        together = run_batch(Batch(specs, diagnostics=False))
        alone = [run_batch(Batch((spec,), diagnostics=False))[0] for spec in specs]
        return [abs(a.val_loss - b.val_loss) for a, b in zip(together, alone, strict=True)]

    monkeypatch.setenv("INITLAB_FUSED", "0")
    assert MeanField("tanh", 4.0).chi_1 > 1 and max(gaps(4.0)) > 1e-2
    assert MeanField("tanh", 0.5).chi_1 < 1 and max(gaps(0.5)) > 1e-3
    monkeypatch.setenv("INITLAB_FUSED", "1")
    if fused.kernel() is not None:
        assert gaps(4.0) == [0.0] * 4 and gaps(0.5) == [0.0] * 4


@pytest.mark.slow
def test_the_store_records_batch_size_and_train_spec_measures_what_it_reproduced(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SPEC)
    store = tmp_path / "s.db"
    run_sweep(tmp_path / "s.toml", store, device="cpu")
    rows = sqlite3.connect(store).execute("SELECT run_id, batch_runs FROM runs").fetchall()
    assert {b for _, b in rows} == {4}  # each depth's 2 inits x 2 seeds trained as one stack
    # a stored run re-run alone: the comparison is printed, its numbers decided by the two records
    run_id = rows[0][0]
    assert main(["results", "--store", str(store), "--run", run_id, "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    (tmp_path / "run.json").write_text(json.dumps(record))
    assert main(["train", "--spec", str(tmp_path / "run.json"), "--out", str(tmp_path / "o"), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["experiments"]
    expected = max(abs(entry[k] - record[k]) for k in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"))
    assert entry["rerun"]["max_abs_diff"] == pytest.approx(expected, abs=1e-12)
    assert entry["rerun"]["same"] == (expected <= 1e-5)


def test_a_rerun_that_differs_says_by_how_much_and_why():
    stored = {"val_loss": 0.119, "train_loss": 0.1, "train_accuracy": 1.0, "val_accuracy": 0.95, "batch_runs": 96}
    rerun = {"val_loss": 0.034, "train_loss": 0.1, "train_accuracy": 1.0, "val_accuracy": 0.95}
    check = compare_rerun(stored, rerun)
    assert not check["same"] and check["max_abs_diff"] == pytest.approx(0.085)
    assert "val_loss 0.034 now, 0.119 stored" in check["note"] and "in a batch of 96 runs" in check["note"]
    both = compare_rerun({**stored, "trainer": "batched"}, {**rerun, "trainer": "single"})["note"]
    # another trainer explains the difference (on the fused kernel the batch of 96 does not)
    assert "trained with the batched trainer (this re-run: the single one)" in both and "batch of 96" not in both
    assert compare_rerun(stored, {**stored, "val_loss": 0.119 + 2e-6})["same"]
    assert compare_rerun(stored, {**rerun, "val_loss": None})["max_abs_diff"] == math.inf  # diverged now
