"""The transfer store: one SQLite file, one row per finished cell, each group committed atomically.

Its own table (``transfer_cells``), so the file can sit beside, or be, a sweep store without
colliding with ``runs``. A cell's key hashes everything that decides its loss: the run's
settings (family or factory, task, steps, batch, base width and depth, data seed) and the
cell's own (parametrization, width, depth, lr, seed). The cells trained together (one
parametrization, width and depth) are written in one transaction: an interrupted grid keeps
every finished group and nothing partial; a rerun trains only the missing cells.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._validation import DataError

__all__ = ["TransferStore", "cell_key"]

_COLUMNS = ("key", "settings_hash", "parametrization", "width", "depth", "lr", "seed", "loss", "finished_at")


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A short hash of the run's settings (sorted JSON)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def cell_key(settings_id: str, parametrization: str, width: int, depth: int, lr: float, seed: int) -> str:
    """The key of one cell: the settings' hash and the cell's coordinates (lr by its exact repr)."""
    text = f"{settings_id}|{parametrization}|{width}|{depth}|{float(lr)!r}|{seed}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class TransferStore:
    """Cells of transfer grids in ``path`` (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=30.0)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS transfer_cells (key TEXT PRIMARY KEY, settings_hash TEXT, "
                "parametrization TEXT, width INTEGER, depth INTEGER, lr REAL, seed INTEGER, loss REAL, "
                "finished_at REAL)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS transfer_settings (settings_hash TEXT PRIMARY KEY, "
                              "settings_json TEXT)")
            self.conn.commit()
        except sqlite3.DatabaseError as err:
            raise DataError(f"store {str(self.path)!r} is not a usable SQLite file: {err}") from None

    def register(self, settings_id: str, settings: Mapping[str, Any]) -> None:
        """Record the settings a hash stands for (once)."""
        with self.conn:
            self.conn.execute("INSERT OR IGNORE INTO transfer_settings VALUES (?, ?)",
                              (settings_id, json.dumps(settings, sort_keys=True)))

    def losses(self, keys: Iterable[str]) -> dict[str, float]:
        """Key -> stored loss (nan for a diverged cell) for the keys already in the store."""
        keys = list(keys)
        out: dict[str, float] = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            rows = self.conn.execute(f"SELECT key, loss FROM transfer_cells WHERE key IN ({','.join('?' * len(part))})",
                                     part).fetchall()
            out.update({k: float("nan") if v is None else float(v) for k, v in rows})
        return out

    def add(self, rows: Iterable[tuple[str, str, str, int, int, float, int, float]]) -> None:
        """Write ``(key, settings_hash, parametrization, width, depth, lr, seed, loss)`` rows in one transaction."""
        now = time.time()
        with self.conn:
            self.conn.executemany(
                f"INSERT OR IGNORE INTO transfer_cells ({','.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})",
                [(*r[:7], None if r[7] != r[7] else r[7], now) for r in rows])

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM transfer_cells").fetchone()[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> TransferStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
