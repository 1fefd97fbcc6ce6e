"""Where a sweep's batches run: this process (``local``) or a Ray cluster (``ray``).

An executor maps the pure batch function (:func:`~initlab.experiments.sweep.run_batch`) over
batches and yields ``(batch, rows)`` as each batch finishes; the caller alone writes the store.
:class:`RayExecutor` ships the same function to Ray workers as tasks: a worker that dies
(a node lost, a process killed) has its batch re-run by Ray, and a batch that raises is not
retried (the same batch would raise again). Ray is optional (``pip install 'initlab[ray]'``)
and imported only when a Ray executor starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .._validation import InitlabError, ValidationError, check_choice, check_int
from .execute import Executor, LocalExecutor

if TYPE_CHECKING:
    from .execute import Batch
    from .record import RunRecord

__all__ = ["EXECUTORS", "RayExecutor", "open_executor", "CONNECT_TIMEOUT", "LOCAL_OBJECT_STORE"]

EXECUTORS = ("local", "ray")
CONNECT_TIMEOUT = 30.0  # seconds initlab waits for an --address to answer (Python's start and Ray's exit come on top)
LOCAL_OBJECT_STORE = 128 * 2**20  # bytes: batches and rows are kilobytes; Ray's default takes 30% of RAM


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InitlabError("the ray executor needs Ray: pip install 'initlab[ray]'") from None
    return ray


def _run_batch_task(fn: Callable[[Batch], list[RunRecord]], threads: int, batch: Batch) -> list[RunRecord]:
    """The body of a Ray task: the batch function under this task's share of torch threads."""
    import torch

    torch.set_num_threads(threads)
    return fn(batch)


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(f"--address must be auto or HOST:PORT (e.g. 10.0.0.5:6379), got {address!r}")
    return host.strip("[]"), int(port)


def _token_hint() -> str:
    """A pointer at Ray's token authentication, whose failures read only "Failed to connect"."""
    token = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(token)):
        return ""
    return ("; Ray token authentication is set up here (RAY_AUTH_TOKEN or " + token + "): the cluster must have "
            "been started with the same token (RAY_AUTH_MODE=token on every node, the head's token copied here)")


class RayExecutor:
    """Batches as Ray tasks, on a local Ray instance or the cluster at ``address``.

    ``address``: ``None`` starts a private local instance sized for this machine (``num_cpus``,
    default every core) and stops it afterwards; ``"auto"`` or ``"HOST:PORT"`` joins a running
    cluster (``ray start --head``) and fails within :data:`CONNECT_TIMEOUT` seconds if none
    answers. If this process is already connected to Ray (``ray.init`` in a notebook), that
    connection is used and left open. ``threads``: torch threads per task, also the CPUs each
    task reserves. ``max_retries``: re-runs of a batch whose worker died (Ray's ``max_retries``);
    a batch that raises is not re-run. Every node needs initlab installed.

    Use it as a context manager, or let :meth:`map` connect and disconnect around one sweep.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, threads: int = 1,
                 max_retries: int = 3, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.threads = threads
        self.max_retries = max_retries
        self.connect_timeout = connect_timeout
        self._owned = False  # whether start() made the Ray connection (and so stop() ends it)

    @property
    def name(self) -> str:
        """``ray`` (a local instance) or ``ray at ADDRESS``: what a sweep's summary prints."""
        return "ray" if self.address is None else f"ray at {self.address}"

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, threads={self.threads})"

    # ---------------------------------------------------------------- connection
    def start(self) -> RayExecutor:
        """Check the settings and connect to Ray (start a local instance when no address); idempotent."""
        if self._owned:
            return self
        check_int("threads", self.threads, 1)
        check_int("max_retries", self.max_retries, 0)
        if self.num_cpus is not None:
            check_int("num_cpus", self.num_cpus, 1)
            if self.address is not None:
                raise ValidationError("num_cpus sizes a local Ray instance; a cluster at an address has its own")
        deadline = time.monotonic() + self.connect_timeout
        address = None if self.address is None else str(self.address).strip()
        ray = _import_ray()
        if address not in (None, "auto"):
            self._probe(address, *_split_address(address))
        if ray.is_initialized():
            return self
        if address is None:
            ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE, log_to_driver=False, logging_level=logging.WARNING)
        else:
            self._join(ray, address, deadline)
        self._owned = True
        return self

    def stop(self) -> None:
        """Disconnect from Ray if :meth:`start` connected (a local instance stops with it)."""
        if self._owned:
            self._owned = False
            _import_ray().shutdown()

    def __enter__(self) -> RayExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _probe(self, address: str, host: str, port: int) -> None:
        """Fail fast, in one line, when nothing listens at the address (Ray itself retries for minutes)."""
        try:
            socket.create_connection((host, port), timeout=min(5.0, self.connect_timeout / 2)).close()
        except OSError as err:
            reason = "timed out" if isinstance(err, TimeoutError) else (err.strerror or str(err) or type(err).__name__)
            raise ValidationError(
                f"no Ray cluster at --address {address!r} ({reason}); start one there with "
                "`ray start --head`, or leave out --address for a local one"
            ) from None

    def _join(self, ray: Any, address: str, deadline: float) -> None:
        """``ray.init(address)`` with a deadline: a port that accepts but never answers must not hang the sweep."""
        outcome: dict[str, BaseException] = {}

        def connect() -> None:
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            except BaseException as err:  # handed to the caller's thread
                outcome["error"] = err

        thread = threading.Thread(target=connect, name="initlab-ray-connect", daemon=True)
        thread.start()
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            raise ValidationError(f"no Ray cluster answered at --address {address!r} within "
                                  f"{self.connect_timeout:.0f} s; check the address (`ray status` on the head node)")
        if "error" in outcome:
            first = (str(outcome["error"]).strip().splitlines() or [type(outcome["error"]).__name__])[0]
            raise ValidationError(f"cannot join the Ray cluster at --address {address!r}: {first}{_token_hint()}")

    # ---------------------------------------------------------------- work
    def map(self, fn: Callable[[Batch], list[RunRecord]], batches: Sequence[Batch]
            ) -> Iterator[tuple[Batch, list[RunRecord]]]:
        """Submit every batch as a Ray task; yield ``(batch, rows)`` as each finishes (any order)."""
        batches = list(batches)
        if not batches:
            return
        owned_here = not self._owned
        self.start()
        owned_here = owned_here and self._owned
        ray = _import_ray()
        task = ray.remote(max_retries=self.max_retries, retry_exceptions=False)(_run_batch_task)
        pending = {}
        try:
            for batch in batches:
                gpus = 1 if str(getattr(batch, "device", "cpu")).startswith("cuda") else 0
                ref = task.options(num_cpus=self.threads, num_gpus=gpus).remote(fn, self.threads, batch)
                pending[ref] = batch
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                batch = pending.pop(ref)
                try:
                    rows = ray.get(ref)
                except ray.exceptions.RayTaskError as err:
                    cause = getattr(err, "cause", None)
                    if isinstance(cause, InitlabError):  # a library error keeps its one-line message
                        raise cause from None
                    raise
                yield batch, rows
        finally:
            for ref in pending:  # the caller stopped early (an error, Ctrl-C): drop the rest
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
            if owned_here:
                self.stop()


@contextlib.contextmanager
def open_executor(name: str = "local", address: str | None = None, threads: int = 1) -> Iterator[Executor]:
    """The executor called ``name``, connected (Ray: started or joined) before it is yielded, closed after.

    Everything that can fail on bad input (an unknown name, Ray missing, an unreachable
    address) fails here, before the caller opens a store.
    """
    name = check_choice("executor", str(name).strip().lower(), EXECUTORS)
    if name == "local":
        if address is not None:
            raise ValidationError("--address needs --executor ray (the local executor runs in this process)")
        yield LocalExecutor()
        return
    with RayExecutor(address=address, threads=threads) as executor:
        yield executor
