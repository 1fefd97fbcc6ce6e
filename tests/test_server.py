"""The lab's JSON API: the catalog, every limit rejected with a 4xx naming the field, CSV
uploads, the event stream of a run and of a comparison, concurrency and disconnects."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from initlab import initializers
from initlab.plots.style import INIT_COLORS
from initlab.server import LIMITS, background, create_app

FAST = {"epochs": 4, "n_samples": 60, "hidden": [10]}


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(create_app(min_run_seconds=0.0)) as c:  # unpaced: the API tests want speed
        yield c


def events(response: httpx.Response) -> list[dict]:
    """The JSON payloads of a server-sent-event body."""
    return [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]


def test_catalog_lists_every_initializer_with_the_figures_colours(client):
    body = client.get("/api/initializers").json()
    names = [i["name"] for i in body["initializers"]]
    assert names == initializers.names()
    by_name = {i["name"]: i for i in body["initializers"]}
    assert by_name["he_normal"]["color"] == INIT_COLORS["he_normal"]
    assert by_name["he_normal"]["params"] == {"negative_slope": 0.0, "mode": "fan_in"}
    assert "He" in by_name["he_normal"]["reference"]
    assert body["colors"]["zeros"] == INIT_COLORS["zeros"]


def test_openapi_describes_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/initializers", "/api/options", "/api/train", "/api/compare", "/api/preview",
                 "/api/datasets/csv"):
        assert path in paths
    assert "text/event-stream" in paths["/api/train"]["post"]["responses"]["200"]["content"]


def test_options_expose_the_limits(client):
    body = client.get("/api/options").json()
    assert body["limits"]["max_units"] == LIMITS.max_units == 64
    assert body["limits"]["max_hidden_layers"] == 8
    assert "relu" in body["activations"] and "sigmoid" in body["activations"]
    assert body["defaults"]["weight_init"]["name"] == "he_normal"


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "initlab" in page.text
    assert client.get("/static/lab.js").status_code == 200


BAD_TRAIN = [
    ({"hidden": [10] * 9}, "hidden"),
    ({"hidden": [65]}, "hidden[0]"),
    ({"hidden": []}, "hidden"),
    ({"hidden": [0]}, "hidden[0]"),
    ({"epochs": LIMITS.max_epochs + 1}, "epochs"),
    ({"epochs": 0}, "epochs"),
    ({"n_samples": LIMITS.max_samples + 1}, "n_samples"),
    ({"n_samples": 5}, "n_samples"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": LIMITS.max_batch_size + 1}, "batch_size"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"learning_rate": 11}, "learning_rate"),
    ({"noise": 1.5}, "noise"),
    ({"validation_split": 0.9}, "validation_split"),
    ({"seed": -1}, "seed"),
    ({"momentum": 1.0}, "momentum"),
    ({"activation": "relux"}, "activation"),
    ({"optimizer": "adamw"}, "optimizer"),
    ({"dataset": "/etc/passwd.csv"}, "dataset"),
    ({"dataset": "digits"}, "dataset"),
    ({"csv": "a,b,c\n1,2,0\n"}, "csv"),
    ({"dataset": "csv"}, "csv"),
    ({"dataset": "csv", "csv": "x" * (LIMITS.max_upload_bytes + 1)}, "csv"),
    ({"weight_init": {"name": "he_norml"}}, "did you mean 'he_normal'"),
    ({"weight_init": {"name": "normal", "params": {"stdd": 1.0}}}, "weight_init"),
    ({"weight_init": {"name": "normal", "params": {"std": 1e9}}}, "weight_init.params.std"),
    ({"weight_init": {"name": "normal", "params": {f"p{i}": 1 for i in range(9)}}}, "weight_init.params"),
    ({"weight_init": {"name": "normal", "extra": 1}}, "weight_init.extra"),
    ({"bias_init": {"name": "nope"}}, "bias_init"),
    ({"unknown_key": 1}, "unknown_key"),
]


@pytest.mark.parametrize("patch, field", BAD_TRAIN, ids=[f for _, f in BAD_TRAIN])
def test_every_limit_is_a_4xx_naming_the_field(client, patch, field):
    for path in ("/api/train", "/api/preview"):
        r = client.post(path, json={**FAST, **patch})
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
        assert r.status_code == 422
        assert field in r.json()["detail"], r.json()["detail"]


BAD_COMPARE = [
    ({"inits": [{"name": "zeros"}]}, "inits"),
    ({"inits": [{"name": "zeros"}] * 5}, "inits"),
    ({"inits": [{"name": "zeros"}, {"name": "lsuv"}]}, "lsuv"),
    ({"inits": [{"name": "zeros"}, {"name": "he_nromal"}]}, "inits[1]"),
    ({}, "inits"),
]


@pytest.mark.parametrize("patch, field", BAD_COMPARE, ids=[f for _, f in BAD_COMPARE])
def test_compare_limits_are_4xx(client, patch, field):
    r = client.post("/api/compare", json={**FAST, **patch})
    assert r.status_code == 422
    assert field in r.json()["detail"]


def test_oversized_and_malformed_bodies_are_4xx(client):
    big = client.post("/api/train", content=b"{" + b" " * (LIMITS.max_body_bytes + 10) + b"}",
                      headers={"content-type": "application/json"})
    assert big.status_code == 413 and "too large" in big.json()["detail"]
    broken = client.post("/api/train", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and "detail" in broken.json()
    listed = client.post("/api/train", json=[1, 2])
    assert listed.status_code == 422


GOOD_CSV = "x1,x2,label\n" + "".join(f"{i / 10},{(i % 3) / 3},{'a' if i % 2 else 'b'}\n" for i in range(40))


def upload(client, text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    return client.post("/api/datasets/csv", files={"file": ("mine.csv", data, "text/csv")})


def test_csv_upload_parses_in_memory(client):
    r = upload(client, GOOD_CSV)
    assert r.status_code == 200
    body = r.json()
    assert body["n_samples"] == 40 and body["class_names"] == ["a", "b"]
    assert len(body["X"]) + len(body["X_val"]) == 40 and len(body["X"][0]) == 2


@pytest.mark.parametrize("text, words", [
    ("x1,x2,label\n0,1,a\n0,oops,b\n1,1,a\n2,2,b\n3,3,a\n", "line 3, column 'x2': not a number: 'oops'"),
    ("x1,x2,label\n0,1,a\n0,1\n1,1,a\n2,2,b\n3,3,a\n", "line 3 has 2 cells"),
    ("x1,x2,label\n0,1,a\n1,1,a\n2,2,a\n3,3,a\n4,4,a\n", "one class only"),
    ("x1,x2,x3,label\n" + "0,1,2,a\n1,1,2,b\n" * 5, "exactly 2 feature columns, got 3"),
    ("x1,x2,label\n0,1,a\n", "too few rows"),
    ("", "empty"),
    (b"\xff\xfe\x00bin\x00", "cannot decode"),
])
def test_malformed_csv_gives_a_clear_error(client, text, words):
    r = upload(client, text)
    assert r.status_code == 422
    assert words in r.json()["detail"]


def test_csv_limits(client):
    big = upload(client, "x1,x2,label\n" + "1.000000,2.000000,0\n" * 60_000)
    assert big.status_code == 413 and "1000000 bytes" in big.json()["detail"]
    many = upload(client, "x1,x2,label\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(LIMITS.max_samples + 1)))
    assert many.status_code == 422 and "at most 2000 rows" in many.json()["detail"]
    classes = upload(client, "x1,x2,label\n" + "".join(f"{i},{i},{i}\n" for i in range(12)))
    assert classes.status_code == 422 and "at most 10 classes" in classes.json()["detail"]
    missing = client.post("/api/datasets/csv")
    assert missing.status_code == 422 and "file" in missing.json()["detail"]


def test_a_zero_init_run_streams_frames_and_ends_with_results(client):
    spec = {**FAST, "activation": "sigmoid", "weight_init": {"name": "zeros"}}
    r = client.post("/api/train", json=spec)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = events(r)
    assert [e["type"] for e in evs][0] == "start" and evs[-1]["type"] == "done"
    assert len(evs[0]["data"]["X"]) == 48 and len(evs[0]["data"]["X_val"]) == 12  # 20% held out
    frames = [e for e in evs if e["type"] == "progress"]
    assert frames[0]["epoch"] == 0 and frames[-1]["epoch"] == 4
    assert len(frames[0]["boundary"]["p"]) == LIMITS.grid ** 2
    hidden1 = frames[-1]["layers"][0]
    assert (hidden1["name"], hidden1["units"], hidden1["distinct_units"]) == ("hidden1", 10, 1)
    assert "symmetry" in [v["code"] for v in frames[-1]["verdicts"]]
    # the history arrives in slices that add up to every epoch once
    losses = [x for f in frames for x in f["history"].get("loss", [])]
    exp = evs[-1]["results"]["experiments"][0]
    assert losses == pytest.approx(exp["history"]["loss"], rel=1e-6) and len(losses) == 4  # the record keeps 8 digits
    for key in ("dataset", "n_samples", "activation", "initializer", "hidden", "optimizer", "learning_rate",
                "epochs", "batch_size", "seed", "train_accuracy", "val_accuracy", "train_loss", "val_loss"):
        assert key in exp
    assert exp["initializer"] == "zeros" and exp["spec"]["init"] == "zeros" and exp["trainer"] == "batched"
    assert exp["diagnostics"]["layers"][0]["distinct_units"] == 1
    assert evs[-1]["summary"]["verdicts"] == ["symmetry"]


def test_preview_same_seed_same_initial_weights(client):
    spec = {**FAST, "weight_init": {"name": "glorot_normal"}, "seed": 3}
    a, b = client.post("/api/preview", json=spec).json(), client.post("/api/preview", json=spec).json()
    c = client.post("/api/preview", json={**spec, "seed": 4}).json()
    assert a["boundary"]["p"] == b["boundary"]["p"] and a["layers"] == b["layers"]
    assert a["boundary"]["p"] != c["boundary"]["p"]


def test_training_on_an_uploaded_csv(client):
    r = client.post("/api/train", json={**FAST, "dataset": "csv", "csv": GOOD_CSV})
    done = events(r)[-1]
    assert done["type"] == "done" and done["results"]["experiments"][0]["dataset"] == "upload.csv"
    assert done["results"]["experiments"][0]["n_samples"] == 40


def test_compare_trains_side_by_side_and_matches_single_runs(client):
    inits = [{"name": "zeros"}, {"name": "he_normal"}, {"name": "glorot_uniform"}]
    evs = events(client.post("/api/compare", json={**FAST, "inits": inits}))
    assert evs[0]["mode"] == "compare" and evs[0]["colors"][1] == INIT_COLORS["he_normal"]
    frames = [e for e in evs if e["type"] == "progress"]
    assert all(len(f["runs"]) == 3 for f in frames)
    assert len(frames[-1]["history"]["loss"]) == 3  # one curve per initializer
    summaries = evs[-1]["summaries"]
    assert [s["initializer"] for s in summaries] == ["zeros", "he_normal", "glorot_uniform"]
    single = events(client.post("/api/train", json={**FAST, "weight_init": {"name": "he_normal"}}))[-1]["summary"]
    assert summaries[1]["val_loss"] == pytest.approx(single["val_loss"], rel=1e-4)
    assert summaries[1]["train_accuracy"] == pytest.approx(single["train_accuracy"])


def test_runs_per_client_are_limited_and_a_disconnect_stops_the_run():
    app = create_app(per_client=1, total=4)
    slots = app.state.slots
    long_run = {"epochs": LIMITS.max_epochs, "n_samples": 100, "batch_size": 1}  # 160,000 steps: within max_steps
    with background(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        with http.stream("POST", "/api/train", json=long_run) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            assert json.loads(first[6:])["type"] == "start"
            assert slots.active() == 1
            second = http.post("/api/train", json=FAST)
            assert second.status_code == 429 and "at most 1" in second.json()["detail"]
        deadline = time.monotonic() + 120  # generous: only a run that never stops fails
        while slots.active() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slots.active() == 0  # the run stopped when its client went away
        again = http.post("/api/train", json=FAST)
        assert again.status_code == 200 and events(again)[-1]["type"] == "done"


def test_the_server_wide_limit_is_a_503():
    app = create_app(per_client=5, total=1)
    app.state.slots.acquire("10.0.0.9")  # another client's run
    with TestClient(app) as c:
        r = c.post("/api/train", json=FAST)
    assert r.status_code == 503 and "busy" in r.json()["detail"]


def test_a_short_run_is_paced_and_streams_many_frames():
    """150 epochs train in well under a second; paced to 2 s, the view gets many frames, throttled.

    What holds on any machine under any load: the run lasts at least the pacing time, it sends
    several frames (not just the first and the last), never more than the throttle allows, and the
    last one is the last epoch. The frame rate itself is measured by bench/lab_bench.py.
    """
    with TestClient(create_app(min_run_seconds=2.0)) as paced:
        start = time.monotonic()
        r = paced.post("/api/train", json={"epochs": 150, "n_samples": 100, "hidden": [10]})
        took = time.monotonic() - start
    frames = [e for e in events(r) if e["type"] == "progress" and not e.get("partial")]
    assert took >= 1.9
    assert 5 <= len(frames) <= took * LIMITS.events_per_second + 2  # + the first and the last frame
    assert frames[-1]["epoch"] == 150
