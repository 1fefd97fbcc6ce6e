"""The SQLite store: schema, atomic batches, resumption, a real kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from initlab import DataError
from initlab.experiments import Store, load_spec, run_sweep
from initlab.experiments.store import RUN_COLUMNS


def _row(run_id: str, **extra):
    return {"run_id": run_id, "status": "finished", "train_loss": 0.5, "history": {"loss": [0.7, 0.5]}, **extra}


def test_schema_tables_and_wal(tmp_path):
    with Store(tmp_path / "s.db") as store:
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"meta", "sweeps", "runs", "sweep_runs"}
        cols = [r[1] for r in store.conn.execute("PRAGMA table_info(runs)")]
        assert cols == list(RUN_COLUMNS)
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_batch_is_all_or_nothing(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.commit_batch("h", [_row("a"), _row("b")])
        with pytest.raises(sqlite3.Error):
            store.commit_batch("h", [_row("c"), _row("d", train_loss=object())])  # second row cannot be stored
        assert store.done_ids() == {"a", "b"}
        assert store.conn.execute("SELECT COUNT(*) FROM sweep_runs").fetchone()[0] == 2
        loss = store.conn.execute("SELECT train_loss, history FROM runs WHERE run_id='a'").fetchone()
        assert loss == (0.5, '{"loss":[0.7,0.5]}')


def test_a_run_is_written_once_whatever_retries_send(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.commit_batch("h", [_row("a", train_loss=0.25)])
        store.commit_batch("h", [_row("a", train_loss=0.75), _row("b")])  # a retried batch repeats "a"
        rows = store.conn.execute("SELECT run_id, train_loss FROM runs ORDER BY run_id").fetchall()
        assert rows == [("a", 0.25), ("b", 0.5)]


def test_a_store_of_initlab_0_1_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, history_json TEXT)")
    con.execute("INSERT INTO runs VALUES ('abc', '{}')")
    con.commit()
    con.close()
    with pytest.raises(DataError, match=r"written by initlab 0.1 \(schema 1\).*move it aside") as err:
        Store(path)
    assert "\n" not in str(err.value)
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"meta", "runs"}  # nothing was added to it


def test_not_a_store_and_wrong_version_are_data_errors(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(DataError, match="is not an initlab SQLite store"):
        Store(junk)
    path = tmp_path / "old.db"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(DataError, match="schema version 99"):
        Store(path)


SPEC = """
[data]
name = "moons"
n_samples = 300
[grid]
init = ["he_normal", "glorot_uniform", "lecun_normal", "orthogonal"]
activation = ["relu", "tanh", "sigmoid"]
depth = [1, 2, 3]
width = [16]
seed = [0, 1, 2]
[train]
epochs = 40
"""


def _count(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_kill_9_mid_sweep_then_rerun_stores_every_run_once(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    db = tmp_path / "kill.db"
    src = Path(__import__("initlab").__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "initlab", "sweep", str(spec), "--store", str(db), "--max-batch", "3",
           "--threads", "1", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _count(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    still_running = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert still_running, f"the sweep finished before the kill: {proc.stderr.read().decode()[-500:]}"
    after_kill = _count(db)
    total = len(load_spec(spec).runs())
    assert 0 < after_kill < total and after_kill % 3 == 0  # whole batches only
    report = run_sweep(spec, db, device="cpu", max_batch=3)
    assert (report.skipped, report.trained) == (after_kill, total - after_kill)
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM runs").fetchone() == (total, total)
    partial = con.execute(
        "SELECT COUNT(*) FROM runs WHERE status IS NULL OR history IS NULL OR train_loss IS NULL"
        " OR epochs_run != 40 OR diagnostics IS NULL OR spec IS NULL"
    ).fetchone()[0]
    assert partial == 0
    assert con.execute("SELECT COUNT(*) FROM sweep_runs").fetchone()[0] == total
