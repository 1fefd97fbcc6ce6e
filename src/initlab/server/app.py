"""The FastAPI app of ``initlab serve``: a static page and a JSON API under ``/api``.

Routes: ``GET /api/initializers`` (the catalog, with the figures' colour of each),
``GET /api/options`` (activations, optimizers, data sets, limits), ``POST /api/datasets/csv``
(parse an upload, in memory), ``POST /api/preview`` (the untrained network),
``POST /api/train`` and ``POST /api/compare`` (a run, answered as a stream of server-sent
events). Bad input is a 4xx JSON ``{"detail": "<field>: <what is wrong>"}``; nothing on the
API reads or writes files.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from importlib import resources
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool

from .. import initializers
from .._validation import InitlabError
from .._version import __version__
from ..models import activation_names
from ..plots.style import CLASS_COLORS, INIT_COLORS, init_color
from ..training import DEFAULT_LR, OPTIMIZERS
from . import runs
from .lab import clean, load_data
from .limits import LIMITS
from .specs import DATASETS, CompareSpec, TrainSpec

__all__ = ["create_app"]

STATIC = resources.files("initlab.server") / "static"


class _BadRequest(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


def _validation_detail(errors: list[dict[str, Any]]) -> str:
    """pydantic errors as one line each: ``hidden[0]: Input should be less than or equal to 64``."""
    lines = []
    for err in errors:
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        where = _field(tuple(err.get("loc", ())))
        lines.append(f"{where}: {msg}" if where else msg)
    return "; ".join(lines)


def create_app(per_client: int = LIMITS.max_runs_per_client, total: int = LIMITS.max_runs_total,
               min_run_seconds: float = LIMITS.min_run_seconds) -> FastAPI:
    """The lab's ASGI app; ``per_client``/``total`` bound the concurrent runs (429/503 beyond);
    runs shorter than ``min_run_seconds`` are paced to last that long (0: as fast as possible)."""
    app = FastAPI(title="initlab lab", version=__version__,
                  description="The browser lab of initlab: train small networks live, initializer first.")
    app.state.slots = runs.RunSlots(per_client, total)
    app.state.executor = ThreadPoolExecutor(max_workers=total, thread_name_prefix="initlab-run")

    @app.middleware("http")
    async def _body_limit(request: Request, call_next):
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length")
            if length is None:
                return JSONResponse({"detail": "Content-Length header required"}, status_code=411)
            if not length.isdigit() or int(length) > LIMITS.max_body_bytes:
                return JSONResponse({"detail": f"request body too large: at most {LIMITS.max_body_bytes} bytes"},
                                    status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc.errors()), "errors": clean(_plain(exc.errors()))},
                            status_code=422)

    @app.exception_handler(PydanticValidationError)
    async def _invalid_model(request: Request, exc: PydanticValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc.errors()), "errors": clean(_plain(exc.errors()))},
                            status_code=422)

    @app.exception_handler(InitlabError)
    async def _library_error(request: Request, exc: InitlabError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(_BadRequest)
    async def _bad(request: Request, exc: _BadRequest) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(runs.SlotsFull)
    async def _full(request: Request, exc: runs.SlotsFull) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers={"Retry-After": "2"})

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
            "defaults": TrainSpec().model_dump(exclude={"csv"}),
        }

    @app.post("/api/datasets/csv")
    async def upload_csv(file: UploadFile = File(...)) -> dict[str, Any]:
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
        data = await run_in_threadpool(load_data, spec)
        return {"csv": text, "n_samples": len(data.X) + len(data.X_val), **data.points()}

    @app.post("/api/preview")
    async def post_preview(spec: TrainSpec) -> dict[str, Any]:
        """The untrained network of ``spec``: boundary and diagnosis at initialization (same seed, same weights)."""
        return await run_in_threadpool(lambda: runs.preview(spec, load_data(spec)))

    @app.post("/api/train", response_class=StreamingResponse,
              responses={200: {"content": {"text/event-stream": {}},
                               "description": "server-sent events: start, progress..., done"}})
    async def post_train(spec: TrainSpec, request: Request) -> StreamingResponse:
        """Train one network; the answer streams ``start``, ``progress`` (>= 10/s) and ``done`` events."""
        return await _start(request, runs.lab_run, spec)

    @app.post("/api/compare", response_class=StreamingResponse,
              responses={200: {"content": {"text/event-stream": {}},
                               "description": "server-sent events: start, progress..., done"}})
    async def post_compare(spec: CompareSpec, request: Request) -> StreamingResponse:
        """Train 2-4 initializers side by side (one BatchedTrainer) on the same data and split."""
        return await _start(request, runs.lab_run, spec)

    async def _start(request: Request, target, spec) -> StreamingResponse:
        data = await run_in_threadpool(load_data, spec)  # bad data fails here, as a 4xx
        spec.specs()  # so does a spec outside the lab's limits
        client = request.client.host if request.client else "unknown"
        run_id = app.state.slots.acquire(client)
        return StreamingResponse(_stream(request, target, spec, data, client, run_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Run-Id": str(run_id)})

    async def _stream(request: Request, target, spec, data, client: str, run_id: int):
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def emit(event: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def work() -> None:
            try:
                target(spec, data, emit, cancel, run_id, pace=min_run_seconds)
            except InitlabError as err:
                emit({"type": "error", "detail": str(err)})
            except Exception as err:  # an internal failure still ends the stream cleanly
                emit({"type": "error", "detail": f"internal error: {type(err).__name__}: {err}"})
            finally:
                emit(None)

        future = loop.run_in_executor(app.state.executor, work)
        future.add_done_callback(lambda _: app.state.slots.release(client))  # the slot frees when training stops
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


def _plain(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic errors without their non-JSON parts (exception objects in ``ctx``)."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
