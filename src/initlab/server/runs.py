"""Run lifecycle: slots per client, training in a worker thread, throttled progress events.

A run is a thread that calls ``emit(event)`` with JSON-ready dicts: ``start`` (the data),
``progress`` frames (at most ``LIMITS.events_per_second``, and at least one per epoch's end
when epochs are slower than that, plus one mid-epoch when a single epoch is slow), then
``done`` (summary and results.json) or ``error``. Setting ``cancel`` stops it within one
minibatch (single runs) or one epoch (comparisons).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch

from ..experiments import execute
from ..experiments.execute import diagnose_trainer
from ..plots.style import init_color
from .lab import (
    LabData,
    boundary,
    clean,
    diagnostics,
    histograms,
    layer_rows,
    neurons,
    results_json,
    variance_vs_theory,
)
from .limits import LIMITS
from .specs import CompareSpec, LabRequest, SweepSpec, TrainSpec

__all__ = ["RunSlots", "SlotsFull", "RunControl", "lab_run", "single_run", "compare_run", "preview", "Cancelled",
           "symmetry_split", "sweep"]

Emit = Callable[[dict[str, Any]], None]
_ids = itertools.count(1)


class SlotsFull(Exception):
    """No slot left: ``status`` is the HTTP status to answer (429 per client, 503 server-wide)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class RunSlots:
    """Counts running runs per client host; ``acquire`` refuses beyond the limits."""

    def __init__(self, per_client: int = LIMITS.max_runs_per_client, total: int = LIMITS.max_runs_total) -> None:
        self.per_client, self.total = per_client, total
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()

    def acquire(self, client: str) -> int:
        with self._lock:
            if self._running[client] >= self.per_client:
                raise SlotsFull(429, f"too many runs: at most {self.per_client} at once per client; stop one first")
            if sum(self._running.values()) >= self.total:
                raise SlotsFull(503, f"the server is busy: {self.total} runs at once; try again shortly")
            self._running[client] += 1
            return next(_ids)

    def release(self, client: str) -> None:
        with self._lock:
            self._running[client] -= 1
            if self._running[client] <= 0:
                del self._running[client]

    def active(self, client: str | None = None) -> int:
        with self._lock:
            return sum(self._running.values()) if client is None else self._running[client]


class Cancelled(Exception):
    """Raised inside the training loop when the client went away."""


class _Throttle:
    """At most ``rate`` frames a second on average (a token bucket: frames land on epoch ends, so
    a fixed gap would round the rate down to the next whole number of epochs), never two closer
    than half a period, and never sooner than twice the time the last frame took to build (so
    building frames takes at most half of a run's time)."""

    def __init__(self, rate: float = LIMITS.events_per_second) -> None:
        self.period, self.last, self.build = 1.0 / rate, -1e9, 0.0
        self.first, self.count = 0.0, 0

    def due(self, factor: float = 1.0) -> bool:
        now = time.monotonic()
        if now - self.last < max(0.5 * self.period * factor, 2 * self.build):
            return False
        return self.count == 0 or self.count < (now - self.first) / (self.period * factor) + 1

    def mark(self) -> None:
        self.last = time.monotonic()
        if self.count == 0:
            self.first = self.last
        self.count += 1

    def built(self) -> None:
        self.build = time.monotonic() - self.last


class _Pacer:
    """Stretches a run that would end in under ``seconds`` to about ``seconds``.

    A small network trains 150 epochs in a fraction of a second: unpaced, the browser would show
    the first and last frame only. Paced, every epoch gets its share of ``seconds`` and the
    throttled events arrive at ``LIMITS.events_per_second``. Long runs are never slowed.
    """

    def __init__(self, epochs: int, seconds: float, cancel: threading.Event) -> None:
        self.epochs, self.seconds, self.cancel = max(1, epochs), seconds, cancel
        self.start = time.monotonic()

    def wait(self, epochs_done: int) -> None:
        due = self.start + self.seconds * epochs_done / self.epochs
        while not self.cancel.is_set() and (left := due - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))


class RunControl:
    """Pause, resume and single-step a run from another request (``/api/runs/{id}/...``)."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.paused = False
        self._steps = 0
        self._lock = threading.Lock()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def step(self) -> None:
        """Let one more epoch run, then stay paused."""
        with self._lock:
            self.paused = True
            self._steps += 1

    def wait(self, cancel: threading.Event) -> float:
        """Block while paused (returns the seconds spent waiting); a step lets one epoch through."""
        start = time.monotonic()
        while self.paused and not cancel.is_set():
            with self._lock:
                if self._steps:
                    self._steps -= 1
                    break
            time.sleep(0.02)
        return time.monotonic() - start


def symmetry_split(initial: list[dict[str, Any]], now: list[dict[str, Any]], optimizer: str) -> list[dict[str, Any]]:
    """Hidden layers whose units started with fewer distinct units than units and have more now.

    Units that start identical (same incoming weights, bias and outgoing weights) get identical
    gradients in exact arithmetic, so any split is float rounding in the kernels (the order of
    sums over a minibatch), grown by training; Adam and RMSprop divide each weight's step by its
    own gradient scale, so a 1e-9 difference takes a full-size step (#19.7). Decided from the
    measured distinct counts, never from the initializer's name.
    """
    out = []
    for before, after in zip(initial, now, strict=True):
        if before.get("name") == "output" or before["distinct_units"] >= before["units"]:
            continue
        if after["distinct_units"] > before["distinct_units"]:
            how = ("amplified by Adam's per-weight step size" if optimizer == "adam" else
                   "amplified by RMSprop's per-weight step size" if optimizer == "rmsprop" else "grown by training")
            out.append({"layer": after["name"], "units": after["units"], "initial": before["distinct_units"],
                        "distinct": after["distinct_units"],
                        "message": (f"{after['name']}: the units started as {before['distinct_units']} distinct "
                                    f"of {after['units']} and are now {after['distinct_units']} distinct: identical "
                                    "units get identical gradients, so they were split by float rounding in the "
                                    f"kernels, {how}; the init did not break the symmetry")})
    return out


def _mark_split(frame: dict[str, Any], split: list[dict[str, Any]]) -> None:
    """Tell a split symmetry as what it is, in the frame's symmetry verdict."""
    frame["symmetry_split"] = split
    if not split:
        return
    for verdict in frame["verdicts"]:
        if verdict["code"] == "symmetry":
            verdict["message"] = "; ".join(s["message"] for s in split)


class _Stop(Exception):
    """Raised from a callback to end work early (a preview's start, a cancelled run)."""


def lab_run(request: LabRequest, data: LabData, emit: Emit, cancel: threading.Event, run_id: int = 0,
            pace: float = 0.0, control: RunControl | None = None) -> None:
    """Train the request's runs (one, or 2-4 initializers side by side) through the run core's
    :func:`~initlab.experiments.execute`, streaming frames; ends with ``done``.

    The runs are one batch of the batched trainer on the request's data and split, so a lab run
    and ``initlab train``/a sweep cell with the same spec get the same numbers (to float
    rounding). ``pace``: a run shorter than this many seconds is stretched to it (see
    ``_Pacer``). Cancelling stops training at the end of the epoch in progress; ``control``
    pauses and steps it.
    """
    specs = request.specs()
    compare = isinstance(request, CompareSpec)
    m, epochs, optimizer = len(specs), specs[0].epochs, specs[0].optimizer
    history: dict[str, list[list[float]]] = {}  # key -> per epoch, (M,) values
    throttle, sent = _Throttle(), [0]
    initial: list[list[dict[str, Any]] | None] = [None] * m  # per network, its layer rows at epoch 0
    rows_X, rows_y = torch.as_tensor(data.X), torch.as_tensor(data.y)  # what diagnostics() looks at
    pacer = _Pacer(epochs, pace, cancel)

    def frame(trainer: Any, epoch: int) -> dict[str, Any]:
        throttle.mark()  # the period counts from a frame's start: building one takes part of it
        proba = trainer.predict_proba(data.grid)  # (M, n*n) or (M, n*n, K)
        # every network's diagnosis from the stacked tensors at once (= diagnose on each, 3-4x faster)
        diags = diagnose_trainer(trainer, rows_X, rows_y)
        runs = []
        for i in range(m):
            run: dict[str, Any] = {"boundary": boundary(proba[i]), "layers": layer_rows(diags[i]),
                                   "verdicts": [v.to_dict() for v in diags[i].verdicts]}
            first = initial[i]
            if first is None:
                first = initial[i] = run["layers"]
            _mark_split(run, symmetry_split(first, run["layers"], optimizer))
            if not compare:
                model = trainer.to_model(i)
                run["neurons"], run["histograms"] = neurons(model, data), histograms(model, data)
                if epoch == 0:  # the initial weights: their variance against the mean field
                    run["theory"] = variance_vs_theory(model, data, specs[i])
            runs.append(run)
        new = {k: np.array(v[sent[0]:]).T.reshape(m, -1) for k, v in history.items()}  # key -> (M, new epochs)
        event = {"type": "progress", "epoch": epoch, "epochs": epochs, "history_from": sent[0],
                 "paused": bool(control and control.paused)}
        if compare:
            event.update(history=new, runs=runs)
        else:
            event.update(history={k: v[0] for k, v in new.items()}, **runs[0])
        sent[0] = len(history.get("loss", []))
        throttle.built()
        return event

    class _Stream:
        def on_train_begin(self, trainer: Any) -> None:
            if cancel.is_set():
                raise _Stop
            emit(clean(frame(trainer, 0)))
            if control is not None:
                pacer.start += control.wait(cancel)

        def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, np.ndarray]) -> None:
            for key, values in logs.items():
                history.setdefault(key, []).append(np.asarray(values, dtype=float).tolist())
            pacer.wait(epoch + 1)
            if cancel.is_set():
                raise _Stop
            stepping = control is not None and control.paused
            if stepping or throttle.due() or epoch + 1 == epochs or not np.isfinite(logs["loss"]).all():
                emit(clean(frame(trainer, epoch + 1)))
            if control is not None:
                pacer.start += control.wait(cancel)

    names = request.init_names
    colors = [init_color(n) for n in names]
    start = {"type": "start", "mode": "compare" if compare else "single", "run_id": run_id,
             "spec": request.model_dump(exclude={"csv"}), "run_specs": [s.to_dict() for s in specs],
             "data": data.points()}
    emit(clean(start | ({"colors": colors} if compare else {"color": colors[0]})))
    try:
        records = list(execute(specs, callbacks=[_Stream()], data=data.dataset, max_batch=m))
    except _Stop:
        return
    entries = [r.to_dict() for r in records]
    for entry, color in zip(entries, colors, strict=True):
        entry["color"] = color
    summaries = [_summary(e) for e in entries]
    done = {"type": "done", "run_id": run_id, "results": results_json(entries)}
    emit(clean(done | ({"summaries": summaries} if compare else {"summary": summaries[0]})))


single_run = compare_run = lab_run  # the names of initlab 0.1's two functions


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("initializer", "color", "train_accuracy", "val_accuracy", "train_loss", "val_loss", "epochs_run",
            "diverged_epoch", "run_id")
    out = {k: record.get(k) for k in keys}
    out["verdicts"] = [v["code"] for v in record["diagnostics"]["verdicts"]]
    history = record.get("history", {}).get("loss") or []
    out["first_loss"], out["last_loss"] = (history[0], history[-1]) if history else (None, None)
    return out


def preview(request: TrainSpec, data: LabData, cancel: threading.Event | None = None) -> dict[str, Any]:
    """The untrained network of ``request``: boundary, diagnosis and neurons at initialization (the
    weights the run starts from: same seed, same weights), through the run core's ``execute``,
    which stops before the first step. ``cancel`` set: stops at the next check (raises Cancelled)."""
    event = cancel or threading.Event()  # a name of its own: mypy keeps no narrowing into the classes below
    taken: dict[str, Any] = {}

    class _Take:
        def on_train_begin(self, trainer: Any) -> None:
            if event.is_set():
                raise _Stop
            model = trainer.to_model(0)
            taken.update(boundary=boundary(model.predict_proba(data.grid).numpy()), **diagnostics(model, data))
            if event.is_set():
                raise _Stop
            taken["neurons"] = neurons(model, data)
            taken["theory"] = variance_vs_theory(model, data, spec)
            taken["histograms"] = histograms(model, data)
            raise _Stop

    (spec,) = request.specs()
    try:
        for _ in execute([spec], callbacks=[_Take()], data=data.dataset, diagnostics=False):
            pass
    except _Stop:
        pass
    if event.is_set() or not taken:
        raise Cancelled
    taken["symmetry_split"] = []
    return cast("dict[str, Any]", clean({"data": data.points(), "color": init_color(request.weight_init.name), **taken}))


def sweep(request: SweepSpec, data: LabData, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Every initializer of ``request`` trained from ``request.seeds`` seeds at once (one stack of the
    batched trainer, through ``execute``): the final validation accuracy of each run, and per
    initializer their mean, standard deviation (n - 1), min and max. ``cancel`` stops it within an epoch."""
    event = cancel or threading.Event()  # a name of its own: mypy keeps no narrowing into the classes below

    class _Cancel:
        def on_epoch_end(self, trainer: Any, epoch: int, logs: Any) -> None:
            if event.is_set():
                raise _Stop

    specs = request.specs()
    try:
        records = list(execute(specs, callbacks=[_Cancel()], data=data.dataset, diagnostics=False,
                               max_batch=len(specs)))
    except _Stop:
        raise Cancelled from None
    n = request.seeds
    has_val = len(data.X_val) > 0
    key = "val_accuracy" if has_val else "train_accuracy"
    out = []
    for i, init in enumerate(request.inits):
        values = np.array([getattr(r, key) for r in records[i * n:(i + 1) * n]], dtype=float)
        out.append({"name": init.name, "color": init_color(init.name), "accuracy": values.tolist(),
                    "seeds": [r.spec.init_seed for r in records[i * n:(i + 1) * n]],
                    "mean": float(values.mean()), "std": float(values.std(ddof=1)) if n > 1 else 0.0,
                    "min": float(values.min()), "max": float(values.max()),
                    "diverged": sum(r.diverged_epoch is not None for r in records[i * n:(i + 1) * n])})
    chance = float(records[0].chance_accuracy)
    return cast("dict[str, Any]", clean({"metric": key, "seeds": n, "epochs": specs[0].epochs, "chance_accuracy": chance, "inits": out}))
