"""The FastAPI app of ``initlab serve``: a static page and a JSON API under ``/api``.

Routes: ``GET /api/initializers`` (the catalog, with the figures' colour of each),
``GET /api/options`` (activations, optimizers, data sets, limits), ``POST /api/datasets/csv``
(parse an upload, in memory), ``POST /api/preview`` (the untrained network),
``POST /api/train`` and ``POST /api/compare`` (a run, answered as a stream of server-sent
events), ``POST /api/runs/{id}/pause|resume|step``. Bad input is a 4xx JSON
``{"detail": "<field>: <what is wrong>", "field": "<field>", "errors": [...]}`` (the
:class:`LabError` schema, declared for every 4xx in the OpenAPI document); nothing on the API
reads or writes files. Only the Host names the lab serves are answered (DNS rebinding), every
request's work is bounded by the lab's limits, previews take a run slot, and a client that goes
away cancels its preview or run.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import initializers
from .._validation import InitlabError
from .._version import __version__
from ..models import activation_names
from ..plots.style import CLASS_COLORS, INIT_COLORS, init_color
from ..training import DEFAULT_LR, OPTIMIZERS
from . import runs
from .lab import LabData, load_data
from .limits import LIMITS, LOOPBACK_HOSTS
from .specs import DATASETS, CompareSpec, LabRequest, SweepSpec, TrainSpec, classic_preset, describe, field_info

__all__ = ["create_app", "LabError", "one_line"]

STATIC = resources.files("initlab.server") / "static"


class _BadRequest(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class LabError(BaseModel):
    """Every 4xx answer: ``detail`` is one line naming the field and what it allows."""

    detail: str
    field: str | None = None
    errors: list[ErrorItem] = []


_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": LabError} for code in (400, 404, 411, 413, 422, 429, 499, 503)}

_NUMERIC = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "int_type", "int_parsing",
            "int_from_float", "float_type", "float_parsing", "finite_number", "missing")


def _where(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def one_line(err: Mapping[str, Any]) -> tuple[str, str]:
    """(field, message) of one pydantic error, e.g. ``("data_seed", "data_seed: must be an integer
    in [0, 4294967295], got -3")``; the range is the field's effective one (RunSpec's, tightened
    by the lab's), and an empty field reads "required"."""
    loc, kind = tuple(err.get("loc", ())), err.get("type", "")
    where = _where(loc)
    ctx = err.get("ctx") or {}
    if kind == "lab_value":
        where = ".".join(p for p in (where, ctx.get("sub", "")) if p)
        return where, f"{where}: {ctx.get('message', err.get('msg', 'invalid'))}"
    names = [p for p in loc if isinstance(p, str) and p != "body"]
    field = names[-1] if names else ""
    allowed = describe(field) if len(names) == 1 else None
    given = err.get("input", None)
    if allowed and kind in _NUMERIC:
        if kind == "missing" or given is None or given == "":
            return where, f"{where}: required ({allowed})"
        return where, f"{where}: must be {allowed}, got {_short(given)}"
    if kind == "extra_forbidden":
        return where, f"{where}: unknown field"
    if kind == "missing":
        return where, f"{where}: required"
    if kind in ("too_long", "too_short") and ctx:
        size = len(given) if isinstance(given, (list, dict, str)) else "?"
        bound = ctx.get("max_length") if kind == "too_long" else ctx.get("min_length")
        items = "layer(s)" if field == "hidden" else "item(s)"
        return where, f"{where}: {'at most' if kind == 'too_long' else 'at least'} {bound} {items}, got {size}"
    if kind in ("json_invalid", "model_attributes_type", "dict_type", "model_type"):
        return where or "body", f"{where or 'body'}: {err.get('msg', 'invalid').lower()}"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return where, (f"{where}: {msg}" if where else msg)


def _validation_body(errors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    lines = [one_line(e) for e in errors]
    return {"detail": "; ".join(dict.fromkeys(m for _, m in lines)), "field": lines[0][0] if lines else None,
            "errors": _plain(errors)}


def create_app(per_client: int = LIMITS.max_runs_per_client, total: int = LIMITS.max_runs_total,
               min_run_seconds: float = LIMITS.min_run_seconds,
               allowed_hosts: tuple[str, ...] | list[str] | None = None, torch_threads: int | None = 1) -> FastAPI:
    """The lab's ASGI app; ``per_client``/``total`` bound the concurrent runs and previews
    (429/503 beyond); runs shorter than ``min_run_seconds`` are paced to last that long (0: as
    fast as possible). ``allowed_hosts``: the Host names answered (default: the loopback names);
    any other Host gets a 400, so a page of another site cannot reach the lab by DNS rebinding.
    ``torch_threads``: torch's intra-op threads, set (process-wide) when the first run or preview
    starts: small MLPs train 10-20x faster on one thread each than on a shared pool when the CPUs
    are busy; None leaves torch's setting alone."""
    app = FastAPI(title="initlab lab", version=__version__,
                  description="The browser lab of initlab: train small networks live, initializer first.")
    app.state.slots = runs.RunSlots(per_client, total)
    app.state.executor = ThreadPoolExecutor(max_workers=total, thread_name_prefix="initlab-run")
    app.state.controls = {}

    def _threads() -> None:
        if torch_threads is not None:
            import torch

            if torch.get_num_threads() != torch_threads:
                torch.set_num_threads(torch_threads)
    hosts = {h.lower().strip("[]") for h in (allowed_hosts or LOOPBACK_HOSTS)}
    app.state.allowed_hosts = hosts

    app.add_middleware(_Gate, hosts=frozenset(hosts))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(_validation_body(exc.errors()), status_code=422)

    @app.exception_handler(PydanticValidationError)
    async def _invalid_model(request: Request, exc: PydanticValidationError) -> JSONResponse:
        return JSONResponse(_validation_body(exc.errors()), status_code=422)

    @app.exception_handler(InitlabError)
    async def _library_error(request: Request, exc: InitlabError) -> JSONResponse:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        field = text.split(":", 1)[0].split(" ", 1)[0] if ":" in text else None
        return JSONResponse({"detail": text, "field": field, "errors": []}, status_code=422)

    @app.exception_handler(_BadRequest)
    async def _bad(request: Request, exc: _BadRequest) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "field": exc.detail.split(":", 1)[0], "errors": []},
                            status_code=exc.status)

    @app.exception_handler(runs.SlotsFull)
    async def _full(request: Request, exc: runs.SlotsFull) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "field": None, "errors": []}, status_code=exc.status,
                            headers={"Retry-After": "2"})

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/api/initializers")
    async def get_initializers() -> dict[str, Any]:
        """The initializer catalog: name, aliases, kind, parameters and defaults, formula, paper, colour."""
        return {
            "initializers": [
                {"name": s.name, "aliases": list(s.aliases), "kind": s.kind, "params": s.defaults,
                 "formula": s.formula, "reference": s.reference, "color": init_color(s.name)}
                for s in initializers.catalog()
            ],
            "colors": INIT_COLORS,
        }

    @app.get("/api/options")
    async def get_options() -> dict[str, Any]:
        """Activations, optimizers (with Keras' default learning rates), data sets, limits, defaults."""
        return {
            "activations": activation_names(), "optimizers": list(OPTIMIZERS), "default_lr": DEFAULT_LR,
            "datasets": list(DATASETS), "limits": asdict(LIMITS), "class_colors": list(CLASS_COLORS),
            "defaults": TrainSpec().model_dump(exclude={"csv"}), "fields": field_info(),
            "presets": {"classic": classic_preset()}, "thresholds": _thresholds(),
        }

    @app.post("/api/datasets/csv", responses=_ERRORS)
    async def upload_csv(file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """Parse an uploaded CSV (header row; two feature columns, class last) in memory."""
        raw = await file.read(LIMITS.max_upload_bytes + 1)
        if len(raw) > LIMITS.max_upload_bytes:
            raise _BadRequest(413, f"file: the CSV upload is larger than {LIMITS.max_upload_bytes} bytes")
        if not raw.strip():
            raise _BadRequest(422, "file: the CSV upload is empty")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _BadRequest(422, "file: not a text CSV file (cannot decode as UTF-8)") from None
        spec = TrainSpec(dataset="csv", csv=text)
        data = await run_in_threadpool(lambda: load_data(spec))
        return {"csv": text, "n_samples": len(data.X) + len(data.X_val), **data.points()}

    async def _bounded(request: Request, job: Callable[[threading.Event], dict[str, Any]]) -> dict[str, Any]:
        """Run ``job(cancel)`` in a worker within a run slot; cancel it when the client goes away."""
        client = request.client.host if request.client else "unknown"
        app.state.slots.acquire(client)
        cancel = threading.Event()

        def work() -> dict[str, Any]:
            _threads()
            return job(cancel)

        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(app.state.executor, work)
        future.add_done_callback(lambda _: app.state.slots.release(client))  # frees when the work stops
        while True:
            done, _ = await asyncio.wait({future}, timeout=0.25)
            if done:
                result: dict[str, Any] = future.result()
                return result
            if await request.is_disconnected():
                cancel.set()
                raise _BadRequest(499, "client: went away; the work was cancelled")

    @app.post("/api/preview", responses=_ERRORS)
    async def post_preview(spec: TrainSpec, request: Request) -> dict[str, Any]:
        """The untrained network of ``spec``: boundary, diagnosis and each neuron's picture at
        initialization (same seed, same weights). Takes a run slot while it computes; cancelled
        when the client goes away."""
        (run_spec,) = spec.specs()  # every field checked before any work (numpy never sees a bad seed)
        return await _bounded(request, lambda cancel: runs.preview(spec, load_data(spec, run_spec), cancel))

    @app.post("/api/sweep", responses=_ERRORS)
    async def post_sweep(spec: SweepSpec, request: Request) -> dict[str, Any]:
        """2-4 initializers x 1-10 seeds trained at once by the batched trainer: each run's final
        accuracy and, per initializer, mean, std, min and max (the Playground's #91)."""
        first = spec.specs()[0]
        return await _bounded(request, lambda cancel: runs.sweep(spec, load_data(spec, first), cancel))

    @app.post("/api/runs/{run_id}/{action}", responses=_ERRORS)
    async def control_run(run_id: int, action: str, request: Request) -> dict[str, Any]:
        """Pause, resume or single-step (``action``: pause, resume, step) a run this client started."""
        control = app.state.controls.get(run_id)
        client = request.client.host if request.client else "unknown"
        if control is None or control.client != client:
            raise _BadRequest(404, f"run_id: no running run {run_id} of this client")
        if action not in ("pause", "resume", "step"):
            raise _BadRequest(422, f"action: must be one of pause, resume, step, got {_short(action)}")
        getattr(control, action)()
        return {"run_id": run_id, "paused": control.paused}

    @app.post("/api/train", response_class=StreamingResponse,
              responses={**_ERRORS, 200: {"content": {"text/event-stream": {}},
                               "description": "server-sent events: start, progress..., done"}})
    async def post_train(spec: TrainSpec, request: Request, paused: bool = False) -> StreamingResponse:
        """Train one network; the answer streams ``start``, ``progress`` (>= 10/s) and ``done`` events.
        ``?paused=true`` starts it paused after the first frame (then ``/api/runs/{id}/step``)."""
        return await _start(request, runs.lab_run, spec, paused)

    @app.post("/api/compare", response_class=StreamingResponse,
              responses={**_ERRORS, 200: {"content": {"text/event-stream": {}},
                               "description": "server-sent events: start, progress..., done"}})
    async def post_compare(spec: CompareSpec, request: Request) -> StreamingResponse:
        """Train 2-4 initializers side by side (one BatchedTrainer) on the same data and split."""
        return await _start(request, runs.lab_run, spec)

    async def _start(request: Request, target: Callable[..., None], spec: LabRequest,
                     paused: bool = False) -> StreamingResponse:
        first = spec.specs()[0]  # a spec outside the lab's limits fails here, as a 4xx, before any work
        data = await run_in_threadpool(lambda: load_data(spec, first))  # so does bad data
        client = request.client.host if request.client else "unknown"
        run_id = app.state.slots.acquire(client)
        app.state.controls[run_id] = runs.RunControl(client)
        app.state.controls[run_id].paused = paused
        return StreamingResponse(_stream(request, target, spec, data, client, run_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Run-Id": str(run_id)})

    async def _stream(request: Request, target: Callable[..., None], spec: LabRequest, data: LabData, client: str,
                      run_id: int) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        cancel = threading.Event()

        def emit(event: dict[str, Any] | None) -> None:  # None: the end of the stream
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def work() -> None:
            _threads()
            try:
                target(spec, data, emit, cancel, run_id, pace=min_run_seconds, control=app.state.controls[run_id])
            except InitlabError as err:
                emit({"type": "error", "detail": str(err)})
            except Exception as err:  # an internal failure still ends the stream cleanly
                emit({"type": "error", "detail": f"internal error: {type(err).__name__}: {err}"})
            finally:
                emit(None)

        future = loop.run_in_executor(app.state.executor, work)
        def _finished(_: Any) -> None:  # the slot frees when training stops, not when the client leaves
            app.state.controls.pop(run_id, None)
            app.state.slots.release(client)

        future.add_done_callback(_finished)
        try:
            while True:
                if await request.is_disconnected():
                    break
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                if event is None:
                    break
                yield f"data: {json.dumps(event, allow_nan=False)}\n\n"
        finally:
            cancel.set()

    return app


class _Gate:
    """Refuses, before any work: a Host the lab does not serve (400: DNS rebinding), a POST without
    Content-Length (411) or larger than ``LIMITS.max_body_bytes`` (413).

    A plain ASGI middleware (not ``@app.middleware("http")``, whose wrapped ``receive`` hides a
    client's disconnect from ``request.is_disconnected()``, which cancels previews).
    """

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = _host_name(headers.get("host", ""))
        answer = None
        if "*" not in self.hosts and host not in self.hosts:
            answer = JSONResponse({"detail": f"host: {_short(host)} is not served here (allowed: "
                                             f"{', '.join(sorted(self.hosts))}; see initlab serve --allowed-hosts)",
                                   "field": "host", "errors": []}, status_code=400)
        elif scope.get("method") in ("POST", "PUT", "PATCH"):
            length = headers.get("content-length")
            if length is None:
                answer = JSONResponse({"detail": "Content-Length header required", "field": None, "errors": []},
                                      status_code=411)
            elif not length.isdigit() or int(length) > LIMITS.max_body_bytes:
                answer = JSONResponse({"detail": f"request body too large: at most {LIMITS.max_body_bytes} bytes",
                                       "field": None, "errors": []}, status_code=413)
        if answer is not None:
            return await answer(scope, receive, send)
        return await self.app(scope, receive, send)


def _thresholds() -> dict[str, float]:
    """The diagnosis' thresholds the page's tooltips quote (``initlab.diagnostics.thresholds``)."""
    from ..diagnostics import thresholds

    names = ("DEAD_FRACTION", "SYMMETRY_TOL", "SATURATION_SLOPE", "SATURATED_FRACTION")
    return {n.lower(): getattr(thresholds, n) for n in names if hasattr(thresholds, n)}


def _host_name(header: str) -> str:
    """The name of a Host header: ``"127.0.0.1:8000"`` -> ``"127.0.0.1"``, ``"[::1]:80"`` -> ``"::1"``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _plain(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pydantic errors without their non-JSON parts (exception objects in ``ctx``)."""
    return [{"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")),
             "type": str(e.get("type"))} for e in errors]
