"""schemathesis against the lab's OpenAPI schema (issue #21): the app on a loopback port, a bounded number
of generated requests per operation, schema-valid and schema-invalid ones; every response must be
free of server errors (5xx) and conform to the schema (status code, content type, body).

The lab's own fixes for #21.2 (``data_seed`` outside numpy's [0, 2^32-1] answered 500; 422 bodies
whose ``detail`` is a string while the schema declares an array, schemathesis' ST108) land from
the server's branch, as does documenting the 400 (malformed JSON) and 413 (oversized body) answers
this test found undocumented: until then exactly those failures are counted and reported, and the
test xfails naming #21.2, while any other failure fails it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from initlab.server import create_app  # noqa: E402

CASES_PER_MODE = 40  # generated requests per operation and generation mode (positive, negative)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SLOW_FIELDS = {"epochs": 3, "n_samples": 200}  # a valid request trains: kept short (values stay in the schema)


@dataclass
class Tally:
    cases: int = 0
    server_errors: int = 0
    failures: Counter = field(default_factory=Counter)  # (operation, kind) -> count
    examples: dict = field(default_factory=dict)


def _kind(case, response, err: BaseException) -> str:
    """Sort a failure: the two known #21.2 failures, or anything else (named by its message)."""
    parts = list(getattr(err, "exceptions", [err]))  # schemathesis raises a group of failures
    text = " | ".join(f"{type(p).__name__}: {str(p).strip()}" for p in parts)
    body = case.body if isinstance(case.body, dict) else {}
    if response.status_code >= 500:
        seed = body.get("data_seed")
        if isinstance(seed, int) and not 0 <= seed <= 2**32 - 1:
            return "known #21.2: 500 on data_seed outside [0, 2^32-1]"
        return f"server error {response.status_code}"
    if (response.status_code == 422 and isinstance(_json(response).get("detail"), str) and len(parts) == 1
            and type(parts[0]).__name__ == "JsonSchemaError" and "/properties/detail" in text):
        return "known #21.2: 422 detail is a string, the schema declares an array (ST108)"
    if len(parts) == 1 and type(parts[0]).__name__ == "UndefinedStatusCode" and response.status_code in (400, 413):
        # found by this test (not in the issue): malformed JSON (400) and oversized bodies (413) are answered
        # as intended but the schema documents only 200 and 422; the lab's schema is the server's to extend
        return f"found #21.2 (schema): undocumented status {response.status_code}"
    return " ".join(text.split())[:200]


def _json(response) -> dict:
    try:
        out = response.json()
    except Exception:  # noqa: BLE001 - an event stream or empty body
        return {}
    return out if isinstance(out, dict) else {}


def _short(case):
    if isinstance(case.body, dict):
        for key, cap in SLOW_FIELDS.items():
            if isinstance(case.body.get(key), int) and case.body[key] > cap:
                case.body[key] = cap
    return case


@contextmanager
def _serving(app) -> Iterator[str]:
    """The app under uvicorn on a free loopback port (in-process calls would re-raise a 500's exception)."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the lab did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _fuzz(tally: Tally) -> None:
    with _serving(create_app(min_run_seconds=0.0)) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        _fuzz_schema(schema, tally)


def _fuzz_schema(schema, tally: Tally) -> None:
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run_operation(operation, mode, tally)


def _run_operation(operation, mode, tally: Tally) -> None:
    @settings(max_examples=CASES_PER_MODE, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode).map(_short))
    def run(case):
        response = case.call(timeout=60)
        tally.cases += 1
        tally.server_errors += response.status_code >= 500
        try:
            case.validate_response(response, checks=CHECKS)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # noqa: BLE001 - schemathesis' failures (a group): sorted, counted
            key = (operation.label, _kind(case, response, err))
            tally.failures[key] += 1
            tally.examples.setdefault(key, (case.body, response.status_code))

    try:
        run()
    except Unsatisfiable:  # no invalid request exists (a GET without parameters)
        assert mode == GenerationMode.NEGATIVE, operation.label


@pytest.mark.slow
def test_the_lab_answers_every_generated_request_without_server_errors_or_schema_violations(capsys):
    tally = Tally()
    _fuzz(tally)
    with capsys.disabled():  # the counts for the note
        print(f"\nschemathesis: {tally.cases} requests, {tally.server_errors} answered 5xx")
        for (label, kind), n in sorted(tally.failures.items()):
            print(f"  {label}: {n} x {kind}  e.g. {tally.examples[(label, kind)]!r:.200}")
    assert tally.cases >= 6 * CASES_PER_MODE  # every operation was exercised
    unknown = {key: n for key, n in tally.failures.items() if not key[1].startswith(("known #21.2", "found #21.2"))}
    assert not unknown, unknown
    if tally.failures:
        pytest.xfail(f"known failures of issue #21.2, fixed on the lab's branch: {dict(tally.failures)}")
