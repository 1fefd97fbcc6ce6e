"""The sweep store: one SQLite file (WAL mode), one transaction per batch of runs.

Tables (see the README's "How results are stored"):

- ``meta(key, value)``: ``schema_version``.
- ``sweeps(spec_hash PK, name, spec_json, n_runs, created)``: each spec ever run.
- ``runs(run_id PK, ...)``: one row per trained network, keyed by the hash of its full spec,
  so the same run in two specs is trained once. A row is ``RunRecord.to_dict()`` (its lists
  and dicts as JSON columns: ``hidden``, ``history``, ``diagnostics``, ``diagnostics_init``,
  ``spec``) plus ``batch_id``, ``finished_at`` and ``batch_runs`` (runs trained together: on the
  batched trainer's torch path a run's float rounding depends on them, so training it alone need
  not give its numbers exactly; its fused CPU kernel gives the same bits either way).
- ``sweep_runs(spec_hash, run_id)``: which runs belong to which spec.

A batch's rows are written in one transaction: a crash (Ctrl-C, ``kill -9``) leaves either
all of the batch or none of it, never a partial row. A row is written once: a run id already
in the store is left as it is (a retried task cannot write a run twice).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from .._validation import DataError

__all__ = ["Store", "SCHEMA_VERSION", "RUN_COLUMNS", "STORE_COLUMNS", "JSON_COLUMNS", "DEFAULT_STORE"]

SCHEMA_VERSION = 2  # 2: one RunRecord per row, three seeds (data, init, order); 1: initlab 0.1
DEFAULT_STORE = "initlab.db"

# column -> SQL type, in table order: the keys of RunRecord.to_dict(), then the store's own.
RUN_COLUMNS: dict[str, str] = {
    "run_id": "TEXT PRIMARY KEY", "name": "TEXT",
    # the spec (what makes the run; run_id hashes it)
    "dataset": "TEXT", "n_samples": "INTEGER", "noise": "REAL", "data_seed": "INTEGER",
    "validation_split": "REAL", "activation": "TEXT", "hidden": "TEXT", "depth": "INTEGER", "width": "INTEGER",
    "init": "TEXT", "initializer": "TEXT", "bias_init": "TEXT", "bias_initializer": "TEXT",
    "optimizer": "TEXT", "learning_rate": "REAL", "momentum": "REAL", "epochs": "INTEGER", "batch_size": "INTEGER",
    "init_seed": "INTEGER", "order_seed": "INTEGER", "seed": "INTEGER",
    # how it ran and what it measured
    "trainer": "TEXT", "device": "TEXT",
    "status": "TEXT",  # finished | diverged
    "diverged_epoch": "INTEGER",  # NULL unless diverged
    "epochs_run": "INTEGER", "n_train": "INTEGER", "n_val": "INTEGER",
    "train_loss": "REAL", "train_accuracy": "REAL", "val_loss": "REAL", "val_accuracy": "REAL",
    "best_val_accuracy": "REAL", "best_val_loss": "REAL", "best_epoch": "INTEGER",
    "chance_accuracy": "REAL", "predicted_classes": "INTEGER",
    "history": "TEXT",  # JSON {"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...]}
    "diagnostics": "TEXT", "diagnostics_init": "TEXT",  # JSON summaries (NULL if off)
    "spec": "TEXT",  # JSON RunSpec: `initlab train --spec` re-runs it
    "wall_time": "REAL",  # seconds: the batch's training time divided by its runs
    "initlab_version": "TEXT",
    "batch_id": "TEXT", "finished_at": "REAL",  # the store's own: which batch, unix time of the commit
    # the store's own: the runs trained together. A run's rounding depends on them, so `train --spec`, which
    # trains it alone, need not give its numbers exactly (see initlab.experiments.rerun)
    "batch_runs": "INTEGER",
}
STORE_COLUMNS = ("batch_id", "finished_at", "batch_runs")  # not in RunRecord.to_dict()
_ADDED_COLUMNS = ("batch_runs",)  # added to schema 2 later: older stores gain it when a sweep writes
JSON_COLUMNS = ("hidden", "history", "diagnostics", "diagnostics_init", "spec")
_BATCH_ID, _FINISHED_AT = list(RUN_COLUMNS).index("batch_id"), list(RUN_COLUMNS).index("finished_at")
# table -> the columns every reader and writer relies on
_TABLES: dict[str, tuple[str, ...]] = {
    "runs": tuple(c for c in RUN_COLUMNS if c not in _ADDED_COLUMNS),
    "sweeps": ("spec_hash", "name", "spec_json", "n_runs", "created"),
    "sweep_runs": ("spec_hash", "run_id"),
}
_PLAIN = {int, float, str, type(None), bool}  # stored as they are (SQLite stores a NaN as NULL)


class Store:
    """A sweep store at ``path``.

    ``readonly=False`` (a sweep): opens an initlab store or creates one in a new (or empty)
    file; any other SQLite database is refused, untouched. ``readonly=True`` (``results``,
    ``plot``): opens an existing initlab store without writing anything to it, also in a
    folder this process cannot write.

    >>> store = Store("initlab.db")          # doctest: +SKIP
    >>> store.done_ids(["ab12..."])          # doctest: +SKIP
    """

    def __init__(self, path: str | Path = DEFAULT_STORE, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise DataError(f"store {str(self.path)!r} is a folder; give a file path such as {self.path / DEFAULT_STORE}")
        exists = self.path.is_file() and self.path.stat().st_size > 0
        if readonly and not self.path.is_file():
            raise DataError(f"store {str(self.path)!r} does not exist (run `initlab sweep SPEC.toml --store {self.path}` first)")
        if readonly or exists:  # look before writing: only an initlab store (or nothing) is ever written to
            self.conn = self._open_readonly()
            try:
                self._check(allow_empty=not readonly)
            except BaseException:
                self.conn.close()
                raise
            if readonly:
                return
            self.conn.close()
            if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
                raise DataError(f"store {str(self.path)!r} is read-only here (no permission to write it or its folder); "
                                "reading it works (`initlab results`); to add runs, copy it to a writable folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # one thread at a time, but not always the opening one (the sweep's writer thread)
            self.conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable to the last commit on power loss-free crashes
            self._create()
        except sqlite3.DatabaseError as err:
            raise DataError(_write_failure(self.path, err)) from None

    def _open_readonly(self) -> sqlite3.Connection:
        """A connection that cannot write. A WAL-mode file (every initlab store) without a -wal file
        beside it, in a writable folder, is opened as usual but query-only: SQLite removes the -wal
        and -shm files it makes when the connection closes (``mode=ro`` would leave them behind), and
        its checkpoint on close has nothing to copy. Otherwise SQLite's ``mode=ro`` (which never
        checkpoints a -wal file someone left), and in a folder where SQLite cannot create a WAL
        file's shared-memory file, the file read as immutable (nobody can be writing it there)."""
        wal = self.path.with_name(self.path.name + "-wal")
        writable = os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
        if _wal_header(self.path) and not wal.exists() and writable:
            conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            return conn
        uri = "file:" + quote(str(self.path.resolve()))
        try:
            return _connect_checked(uri + "?mode=ro")
        except sqlite3.OperationalError as err:
            if "unable to open" not in str(err) or os.access(self.path.parent, os.W_OK):
                raise DataError(f"store {str(self.path)!r} cannot be read: {err}") from None
        except sqlite3.DatabaseError as err:
            raise DataError(f"store {str(self.path)!r} is not an initlab SQLite store: {err}") from None
        try:
            return _connect_checked(uri + "?mode=ro&immutable=1")
        except sqlite3.DatabaseError as err:
            raise DataError(f"store {str(self.path)!r} cannot be read (read-only folder): {err}") from None

    def _check(self, allow_empty: bool) -> bool:
        """Check the open file is an initlab store of this schema (True if it holds no table at all)."""
        try:
            tables = {name for (name,) in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables and allow_empty:
                return True
            if "meta" not in tables:
                listed = ", ".join(sorted(tables)) or "none"
                raise DataError(f"store {str(self.path)!r} is an SQLite database but not an initlab store (tables: {listed}); "
                                "initlab writes only into a new file or its own store: give another --store")
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = None if row is None else str(row[0]).strip()
            if version is None or not version.isdigit():
                raise DataError(f"store {str(self.path)!r} has no readable schema version ({version!r} in table meta): "
                                f"not an initlab store, or a damaged one; this initlab reads schema {SCHEMA_VERSION}")
            if int(version) != SCHEMA_VERSION:
                self._refuse(version)
            for table, needed in _TABLES.items():
                if table not in tables:
                    raise DataError(f"store {str(self.path)!r} has no table {table!r}: a damaged store or another program's")
                have = {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}
                missing = [c for c in needed if c not in have]
                if missing:
                    raise DataError(f"store {str(self.path)!r}: table {table!r} lacks column(s) {', '.join(missing)}; "
                                    "a damaged store or another program's (this initlab writes schema "
                                    f"{SCHEMA_VERSION} with every column)")
        except sqlite3.DatabaseError as err:
            raise DataError(f"store {str(self.path)!r} is not an initlab SQLite store: {err}") from None
        return False

    def _create(self) -> None:
        cols = ", ".join(f"{name} {kind}" for name, kind in RUN_COLUMNS.items())
        with self.conn:
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS sweeps (spec_hash TEXT PRIMARY KEY, name TEXT, spec_json TEXT,"
                " n_runs INTEGER, created REAL)"
            )
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
            have = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
            for name in _ADDED_COLUMNS:
                if name not in have:
                    self.conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {RUN_COLUMNS[name]}")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS sweep_runs (spec_hash TEXT, run_id TEXT, PRIMARY KEY (spec_hash, run_id))"
            )
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _refuse(self, version: str) -> None:
        """A store of another schema is never misread: a one-line error says what to do."""
        if int(version) == 1:
            raise DataError(
                f"store {str(self.path)!r} was written by initlab 0.1 (schema 1), whose runs drew their minibatch "
                "order from the data seed: they cannot be matched to this version's runs; move it aside "
                f"(mv {self.path} {self.path}.v1) and run the sweep again into a new store")
        raise DataError(f"store {str(self.path)!r} has schema version {version}; this initlab reads {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def add_sweep(self, spec_hash: str, name: str, spec: Mapping[str, Any], n_runs: int) -> None:
        """Record a spec (once) with its expanded run count."""
        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO sweeps VALUES (?, ?, ?, ?, ?)",
                (spec_hash, name, json.dumps(spec, sort_keys=True, default=str), n_runs, time.time()),
            )

    def link(self, spec_hash: str, run_ids: Iterable[str]) -> None:
        """Mark finished runs (trained for another spec) as part of ``spec_hash``."""
        with self.conn:
            self.conn.executemany("INSERT OR IGNORE INTO sweep_runs VALUES (?, ?)", [(spec_hash, r) for r in run_ids])

    def commit_batch(self, spec_hash: str | None, rows: Sequence[Mapping[str, Any]], batch_id: str | None = None
                     ) -> list[str]:
        """Write a batch of rows (``RunRecord.to_dict()``) and their sweep links in one transaction
        (all or nothing); a run id already stored keeps its first row. Returns the run ids this
        call wrote (not those another writer had stored first)."""
        names = list(RUN_COLUMNS)
        now = time.time()
        values: list[tuple[Any, ...]] = []
        for row in rows:
            vals = [row.get(n) for n in names]
            vals[_BATCH_ID], vals[_FINISHED_AT] = batch_id or row.get("batch_id"), now
            values.append(tuple([v if type(v) in _PLAIN else _sql_value(v) for v in vals]))  # a list: no generator
        sql = f"INSERT OR IGNORE INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        written = []
        with self.conn:  # one transaction: committed on success, rolled back on any error
            for row, params in zip(rows, values, strict=False):  # row by row: rowcount says whether this one was new
                if self.conn.execute(sql, params).rowcount == 1:
                    written.append(row["run_id"])
            if spec_hash is not None:
                self.conn.executemany(
                    "INSERT OR IGNORE INTO sweep_runs VALUES (?, ?)", [(spec_hash, row["run_id"]) for row in rows]
                )
        return written

    # ------------------------------------------------------------------ reading
    def done_ids(self, run_ids: Iterable[str] | None = None) -> set[str]:
        """The run ids already in the store (of ``run_ids``, or all)."""
        found = {r for (r,) in self.conn.execute("SELECT run_id FROM runs")}
        return found if run_ids is None else found & set(run_ids)

    def record(self, run_id: str) -> dict[str, Any] | None:
        """One run's row with its JSON columns decoded, or None."""
        cur = self.conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([d[0] for d in cur.description], row, strict=False))
        for col in JSON_COLUMNS:
            out[col] = json.loads(out[col]) if out[col] is not None else None
        return out

    def run_ids(self, prefix: str) -> list[str]:
        """Run ids that start with ``prefix`` (for short ids and did-you-mean)."""
        return [r for (r,) in self.conn.execute("SELECT run_id FROM runs WHERE run_id LIKE ? LIMIT 20", (prefix + "%",))]

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def sweeps(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT spec_hash, name, n_runs, created FROM sweeps ORDER BY created")
        return [dict(zip(("spec_hash", "name", "n_runs", "created"), row, strict=False)) for row in cur]

    def rows(self, spec_hash: str | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and all run rows (of one spec when ``spec_hash`` is given)."""
        if spec_hash is None:
            cur = self.conn.execute("SELECT * FROM runs ORDER BY rowid")
        else:
            cur = self.conn.execute(
                "SELECT runs.* FROM runs JOIN sweep_runs USING (run_id) WHERE sweep_runs.spec_hash = ? ORDER BY runs.rowid",
                (spec_hash,),
            )
        return [d[0] for d in cur.description], cur.fetchall()


def _connect_checked(uri: str) -> sqlite3.Connection:
    """A read-only connection that has read the schema (closed again if it cannot)."""
    conn = sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=False)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def _wal_header(path: Path) -> bool:
    """Whether ``path`` starts with an SQLite header in WAL mode (file format versions 2, bytes 18-19)."""
    with open(path, "rb") as f:
        head = f.read(20)
    return head[:16] == b"SQLite format 3\x00" and head[18:20] == b"\x02\x02"


def _write_failure(path: Path, err: sqlite3.DatabaseError) -> str:
    """One line for a store that cannot be written."""
    text = str(err)
    if not path.is_file():
        return f"cannot create store {str(path)!r} ({text}): is its folder writable?"
    if "readonly" in text or "unable to open" in text:
        return (f"store {str(path)!r} is read-only here ({text}); reading it works (`initlab results`); "
                "to add runs, copy it to a writable folder")
    return f"store {str(path)!r} cannot be written: {text}"


def _sql_value(value: Any) -> Any:
    """Python/numpy value -> what sqlite3 stores (dicts and lists as JSON, NaN as NULL)."""
    if value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (dict, list, tuple)):
        return orjson.dumps(value, option=_JSON_OPTIONS, default=_json_default).decode()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS  # non-finite floats are written as null


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
