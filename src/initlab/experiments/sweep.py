"""Run a sweep: expand the grid, skip what the store has, execute the rest, commit each batch.

Batches come from :func:`initlab.experiments.execute.plan` and run through the pure
:func:`~initlab.experiments.execute.run_batch` on any executor (this process, or Ray tasks
with :class:`~initlab.experiments.executors.RayExecutor`); records stream back as each batch
finishes and the driver alone commits them, one transaction per batch.
"""

from __future__ import annotations

import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._validation import InitlabError
from ..datasets import load_csv
from .execute import MAX_BATCH, Batch, Executor, LocalExecutor, plan, resolve_device, run_batch
from .record import RunRecord
from .store import DEFAULT_STORE, Store
from .sweep_spec import SweepSpec, load_spec

__all__ = ["SweepReport", "run_sweep", "Batch", "LocalExecutor", "make_batches", "run_batch", "resolve_device",
           "MAX_BATCH", "StoreWriteError", "executor_name", "check_data"]

make_batches = plan  # the name initlab 0.1 used


@dataclass
class SweepReport:
    """What a call to :func:`run_sweep` did."""

    spec_hash: str
    store: str
    total: int  # runs in the grid
    skipped: int  # already in the store when this sweep started
    trained: int  # trained and committed by this process
    diverged: int  # of those committed by this process
    batches: int
    wall_time: float  # seconds
    device: str
    executor: str = "local"
    raced: int = 0  # trained here, but another process sharing the store committed them first

    @property
    def runs_per_second(self) -> float:
        return self.trained / self.wall_time if self.wall_time > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"runs_per_second": self.runs_per_second}

    def __repr__(self) -> str:
        return (f"SweepReport(spec_hash={self.spec_hash!r}, total={self.total}, trained={self.trained}, "
                f"skipped={self.skipped}, diverged={self.diverged}, wall_time={self.wall_time:.1f})")

    def _repr_html_(self) -> str:
        """Notebook display: counts, time, the store and how to load its runs."""
        from .html import sweep_report_html

        return sweep_report_html(self)


def run_sweep(
    spec: SweepSpec | str | Path,
    store: str | Path = DEFAULT_STORE,
    device: str = "auto",
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_batch: int = MAX_BATCH,
) -> SweepReport:
    """Train every run of ``spec`` not yet in ``store``, committing each batch atomically.

    ``progress(done, total)`` is called after each committed batch (and once at the start), with
    ``done`` counting runs already in the store. Re-running the same spec trains nothing new.
    """
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    device = resolve_device(device)
    check_data(spec)
    executor = executor or LocalExecutor()
    start = time.perf_counter()
    runs = spec.runs()
    ids = [r.run_id for r in runs]  # computed once
    with Store(store) as db:
        n_done, writer = 0, None
        try:
            db.add_sweep(spec.spec_hash, spec.name, spec.source or {"data": spec.data, "grid": spec.grid, "train": spec.train},
                         len(runs))
            done = db.done_ids(ids)
            n_done = len(done)
            db.link(spec.spec_hash, done)  # trained for another spec: count them here too
            todo = [r for r, i in zip(runs, ids, strict=False) if i not in done]
            batches = plan(todo, device, spec.train["diagnostics"], max_batch=max_batch)
            if progress:
                progress(n_done, len(runs))
            writer = _Writer(db, spec.spec_hash, n_done, len(runs), progress)
            try:
                for batch, records in executor.map(run_batch, batches):
                    writer.put(batch, records)  # the next batch trains while this one is written
            finally:
                writer.close()
        except sqlite3.OperationalError as err:  # disk full, I/O error: the failed transaction was rolled back
            n_done = writer.done if writer is not None else n_done
            raise StoreWriteError(_resume_message(store, err, n_done, len(runs))) from None
    return SweepReport(spec.spec_hash, str(store), len(runs), len(done), writer.written, writer.diverged, len(batches),
                       time.perf_counter() - start, device, executor_name(executor), raced=writer.raced)


def check_data(spec: SweepSpec) -> None:
    """Read a sweep's CSV data once, so a bad file fails in one line before a store is created or written."""
    name = str(spec.data.get("name", ""))
    if name.lower().endswith(".csv"):
        load_csv(name)


class StoreWriteError(InitlabError):
    """The store could not take a batch (disk full, I/O error); what it held before is intact."""


def _resume_message(store: str | Path, err: sqlite3.OperationalError, done: int, total: int) -> str:
    # SQLite rolls a failed transaction back, so every batch committed before is whole and the
    # failed one is absent (tested with a size-capped store: the same command then resumes).
    return (f"writing to store {str(store)!r} failed ({err}); the store survived with {done} of {total} runs, "
            "each committed batch whole; free space (or fix the cause) and run the same command again to resume")


def executor_name(executor: Any) -> str:
    """``local``, ``ray``, ``ray at HOST:PORT`` or the class name of a user's executor (never an object repr)."""
    if isinstance(executor, LocalExecutor):
        return "local"
    name = getattr(executor, "name", None)
    return name if isinstance(name, str) and name else type(executor).__name__


class _Writer:
    """Commits batches of records from a thread of its own, one transaction each, in order.

    Turning records into rows and writing them takes a tenth of a batch's training time; done
    here, it overlaps the next batch's training (torch releases the GIL in its kernels). At most
    one batch waits, so a killed driver loses at most the batch waiting and the one in flight.
    A run id is written once even if a retried batch brings it again.
    """

    def __init__(self, db: Store, spec_hash: str, done: int, total: int,
                 progress: Callable[[int, int], None] | None) -> None:
        self.db, self.spec_hash, self.done, self.total, self.progress = db, spec_hash, done, total, progress
        self.diverged = 0  # of the rows this process wrote
        self.written = 0  # rows this process wrote
        self.raced = 0  # rows that another process had written first
        self.committed: set[str] = set()
        self.error: BaseException | None = None
        self.queue: queue.Queue[tuple[Batch, list[RunRecord]] | None] = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, name="initlab-store-writer", daemon=True)
        self.thread.start()

    def put(self, batch: Batch, records: list[RunRecord]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((batch, records))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain after a failure; close() re-raises it
            batch, records = item
            try:
                rows = [r.to_dict(arrays=True) | {"batch_runs": len(batch.specs)}
                        for r in records if r.run_id not in self.committed]
                written = set(self.db.commit_batch(self.spec_hash, rows, batch.batch_id))
            except BaseException as err:  # noqa: BLE001 - handed to the driver thread
                self.error = err
                continue
            self.committed.update(row["run_id"] for row in rows)
            self.done += len(rows)  # in the store now, whoever wrote them
            self.written += len(written)
            self.raced += len(rows) - len(written)
            self.diverged += sum(row["status"] == "diverged" for row in rows if row["run_id"] in written)
            if self.progress:
                self.progress(self.done, self.total)
