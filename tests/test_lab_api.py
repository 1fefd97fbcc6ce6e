"""The lab's API hardening and its bodies derived from RunSpec (issues #20, #21.1, #21.2, #21.6, #19.7, #19.13).

Expected values are computed here (torch autograd, RunSpec's own declarations, the initializer
catalog), never read back from the code under test.
"""

from __future__ import annotations

import json
import math
import time

import annotated_types as at
import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from initlab import initializers
from initlab.runspec import MAX_SEED, RunSpec
from initlab.server import LIMITS, background, create_app, runs
from initlab.server.limits import FIELD_BOUNDS, PARAM_BOUNDS, param_bounds
from initlab.server.specs import FIELDS, TrainSpec

FAST = {"epochs": 3, "n_samples": 60, "hidden": [10]}
ENDPOINTS = ("/api/preview", "/api/train", "/api/compare")


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(create_app(min_run_seconds=0.0)) as c:
        yield c


def events(response) -> list[dict]:
    return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


def body_for(path: str, patch: dict) -> dict:
    extra = {"inits": [{"name": "zeros"}, {"name": "he_normal"}]} if path == "/api/compare" else {}
    return {**FAST, **extra, **patch}


# --------------------------------------------------------------------------- #21.2 / #20 errors
@pytest.mark.parametrize("seed", [-3, 2**32, 1e12, 2**64])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_data_seed_outside_32_bits_is_a_422_naming_the_field(client, path, seed):
    r = client.post(path, json=body_for(path, {"data_seed": seed}))
    assert r.status_code == 422, r.text[:300]
    body = r.json()
    assert body["field"] == "data_seed"
    assert body["detail"] == f"data_seed: must be an integer in [0, {MAX_SEED}], got {seed!r}"
    assert isinstance(body["errors"], list) and body["errors"][0]["loc"][-1] == "data_seed"


def test_the_largest_seed_is_accepted(client):
    assert client.post("/api/preview", json={**FAST, "data_seed": MAX_SEED, "seed": MAX_SEED}).status_code == 200


def test_an_empty_field_is_required(client):
    r = client.post("/api/preview", json={**FAST, "epochs": None})
    assert r.status_code == 422 and r.json()["detail"] == "epochs: required (an integer in [1, 2000])"


def test_a_huge_initializer_parameter_is_one_line(client):
    slope = {"name": "he_normal", "params": {"negative_slope": 1e300}}
    r = client.post("/api/preview", json={**FAST, "weight_init": slope})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("weight_init.params.negative_slope: must be a number in [") and "\n" not in detail
    assert len(r.json()["errors"]) == 1  # not a pydantic dump of every union member


# --------------------------------------------------------------------------- one field, one range
def _declared(name: str) -> tuple[float | None, float | None]:
    info = RunSpec.model_fields[name]
    metadata = info.metadata
    if name == "hidden":
        (width,) = [a for a in info.annotation.__args__ if a is not Ellipsis]
        metadata = width.__metadata__[0].metadata
    lows = [getattr(m, "ge", getattr(m, "gt", None)) for m in metadata if isinstance(m, (at.Ge, at.Gt))]
    highs = [getattr(m, "le", getattr(m, "lt", None)) for m in metadata if isinstance(m, (at.Le, at.Lt))]
    lo, hi = (lows or [None])[0], (highs or [None])[0]
    return lo, hi


def test_the_bodies_are_derived_from_runspec_fields():
    """Every RunSpec field but the label, the initializers and the seeds is a body field, with
    RunSpec's default unless the lab overrides it, and its range RunSpec's tightened by the lab's."""
    own = {"name", "init", "bias_init", "init_seed", "order_seed", "dataset"}
    assert set(FIELDS) == set(RunSpec.model_fields) - own
    assert set(FIELDS) <= set(TrainSpec.model_fields)
    options = TestClient(create_app()).get("/api/options").json()["fields"]
    for name in FIELDS:
        lo, hi = _declared(name)
        if lo is None and hi is None:
            continue
        lab_lo, lab_hi = FIELD_BOUNDS.get(name, (None, None))
        want_lo = lo if lab_lo is None else max(lo, lab_lo)
        want_hi = hi if lab_hi is None else min(hi, lab_hi)
        assert (options[name]["min"], options[name]["max"]) == (want_lo, want_hi), name


@pytest.mark.parametrize("name", ["n_samples", "epochs", "batch_size", "data_seed", "noise", "learning_rate"])
def test_each_bound_is_rejected_with_the_effective_range(client, name):
    options = client.get("/api/options").json()["fields"][name]
    above = options["max"] * 2 + 1 if options["kind"] == "an integer" else options["max"] * 2 + 0.5
    if options["kind"] == "an integer":
        above = int(above)
    r = client.post("/api/preview", json={**FAST, name: above})
    assert r.status_code == 422
    lo, hi = options["min"], options["max"]
    assert f"{name}: must be {options['kind']} in " in r.json()["detail"]
    assert f"{hi:g}]" in r.json()["detail"] or f"{hi}]" in r.json()["detail"], (r.json()["detail"], lo, hi)
    assert "in the lab" not in r.json()["detail"]  # one range, not two


# --------------------------------------------------------------------------- #21.1 bounded work
def test_every_numeric_parameter_of_every_scheme_is_bounded(client):
    for scheme in initializers.catalog():
        for param, default in scheme.defaults.items():
            if isinstance(default, bool) or not isinstance(default, (int, float)):
                continue
            lo, hi = param_bounds(scheme.name, param)
            assert math.isfinite(lo) and math.isfinite(hi) and hi <= LIMITS.max_abs_param
            too_big = int(hi * 10 + 1) if isinstance(default, int) else hi * 10 + 1.0
            init = {"name": scheme.name, "params": {param: too_big}}
            r = client.post("/api/preview", json={**FAST, "weight_init": init})
            assert r.status_code == 422, (scheme.name, param, r.text[:200])
            assert r.json()["field"] == f"weight_init.params.{param}", r.json()


def test_the_lsuv_request_that_burnt_an_hour_is_refused(client):
    hostile = {"weight_init": {"name": "lsuv", "params": {"max_iter": 1_000_000, "tol": 1e-9}}, "n_samples": 2000,
               "hidden": [64] * 8}
    r = client.post("/api/preview", json=hostile)
    assert r.status_code == 422 and r.json()["field"] == "weight_init.params.max_iter"
    lo, hi = PARAM_BOUNDS[("lsuv", "max_iter")]
    assert f"[{lo}, {hi}]" in r.json()["detail"]


def test_a_run_is_bounded_in_minibatch_steps(client):
    r = client.post("/api/train", json={"epochs": 2000, "n_samples": 2000, "batch_size": 1})
    assert r.status_code == 422 and r.json()["field"] == "epochs"
    assert f"at most {LIMITS.max_steps} minibatch steps" in r.json()["detail"]


def test_previews_share_the_run_slots():
    app = create_app(per_client=1, total=4)
    app.state.slots.acquire("testclient")  # this client's run
    with TestClient(app) as c:
        r = c.post("/api/preview", json=FAST)
        assert r.status_code == 429 and "at most 1" in r.json()["detail"]
        app.state.slots.release("testclient")
        assert c.post("/api/preview", json=FAST).status_code == 200
    assert app.state.slots.active() == 0


def test_a_preview_is_cancelled_when_its_client_goes_away(monkeypatch):
    seen = {}

    def slow_preview(request, data, cancel=None):
        seen["cancel"] = cancel
        for _ in range(600):  # up to 30 s, unless cancelled
            if cancel.is_set():
                raise runs.Cancelled
            time.sleep(0.05)
        return {}

    monkeypatch.setattr(runs, "preview", slow_preview)
    app = create_app()
    with background(app) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/api/preview", json=FAST, timeout=1.0)
        deadline = time.monotonic() + 20
        while app.state.slots.active() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen["cancel"].is_set() and app.state.slots.active() == 0


def test_a_run_is_cancelled_when_its_client_goes_away():
    app = create_app(per_client=1, total=2, min_run_seconds=30.0)  # paced: 30 s unless cancelled
    with background(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        with http.stream("POST", "/api/train", json={**FAST, "epochs": 200}) as stream:
            next(line for line in stream.iter_lines() if '"progress"' in line)
            assert app.state.slots.active() == 1
        deadline = time.monotonic() + 20
        while app.state.slots.active() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.slots.active() == 0


# --------------------------------------------------------------------------- #21.6 DNS rebinding
def test_only_the_served_host_names_are_answered():
    with background(create_app()) as url:
        port = url.rsplit(":", 1)[1]
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
            r = httpx.get(f"{url}/api/options", headers={"host": host})
            assert r.status_code == 400 and r.json()["field"] == "host", host
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
            assert httpx.get(f"{url}/api/options", headers={"host": host}).status_code == 200, host
    with background(create_app(allowed_hosts=["lab.example"])) as url:
        assert httpx.get(f"{url}/api/options", headers={"host": "lab.example"}).status_code == 200
        assert httpx.get(f"{url}/api/options", headers={"host": "localhost"}).status_code == 400


def test_serve_takes_allowed_hosts_from_the_command_line(monkeypatch):
    from initlab import server
    from initlab.cli import main

    called = {}
    monkeypatch.setattr(server, "serve", lambda host, port, allowed_hosts=None: called.update(
        host=host, port=port, allowed_hosts=allowed_hosts))
    assert main(["serve", "--port", "8123", "--allowed-hosts", "lab.example, 10.0.0.5"]) == 0
    assert called == {"host": "127.0.0.1", "port": 8123, "allowed_hosts": ["lab.example", "10.0.0.5"]}


# --------------------------------------------------------------------------- OpenAPI: the 4xx schema
def test_422_bodies_match_the_declared_schema(client):
    schema = client.get("/openapi.json").json()
    for path in ("/api/preview", "/api/train", "/api/compare", "/api/datasets/csv"):
        ref = schema["paths"][path]["post"]["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/LabError")
    declared = schema["components"]["schemas"]["LabError"]
    assert declared["properties"]["detail"]["type"] == "string"
    r = client.post("/api/preview", json={**FAST, "hidden": [0]})
    body = r.json()
    assert set(body) == {"detail", "field", "errors"} and isinstance(body["detail"], str)
    for item in body["errors"]:
        assert set(item) == {"loc", "msg", "type"}


# --------------------------------------------------------------------------- #19.13 significant digits
def test_a_tiny_gradient_norm_is_sent_with_its_digits(client):
    tiny = {"name": "normal", "params": {"std": 1e-4}}
    body = {**FAST, "activation": "tanh", "hidden": [10, 10, 10], "weight_init": tiny}
    preview = client.post("/api/preview", json=body).json()
    grad = preview["layers"][0]["grad_norm"]
    # independently: the same weights (the first frame's are the run's step 0) by torch autograd
    from initlab.experiments.execute import Batch, build_stack
    from initlab.server.lab import load_data

    spec = TrainSpec(**body)
    data = load_data(spec)
    model = build_stack(Batch(tuple(spec.specs())), data.dataset, data.split).to_model(0)
    X, y = torch.as_tensor(data.X), torch.as_tensor(data.y, dtype=torch.float32)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(X).squeeze(-1), y)
    (g,) = torch.autograd.grad(loss, [model.hidden1.weight])
    assert 0 < grad < 1e-6  # tiny, not zero
    assert grad == pytest.approx(float(g.norm()), rel=1e-3)


# --------------------------------------------------------------------------- neurons
def test_zero_relu_neurons_are_exactly_blank_and_flat(client):
    import base64

    body = {**FAST, "hidden": [6, 4], "weight_init": {"name": "zeros"}}
    neurons = client.post("/api/preview", json=body).json()["neurons"]
    assert [(n["layer"], n["units"]) for n in neurons] == [(1, 6), (2, 4)]
    for layer in neurons:
        q = np.frombuffer(base64.b64decode(layer["q"]), dtype=np.uint8)
        assert q.size == layer["units"] * LIMITS.tile_grid**2
        assert (q == 127).all() and all(layer["flat"])  # output 0: white, whatever 1e-10 rounding says


def test_neuron_pictures_are_the_units_outputs(client):
    import base64

    body = {**FAST, "activation": "tanh", "hidden": [5], "weight_init": {"name": "glorot_normal"}, "seed": 2}
    preview = client.post("/api/preview", json=body).json()
    layer = preview["neurons"][0]
    from initlab.experiments.execute import Batch, build_stack
    from initlab.server.lab import load_data

    spec = TrainSpec(**body)
    data = load_data(spec)
    model = build_stack(Batch(tuple(spec.specs())), data.dataset, data.split).to_model(0)
    x0, x1, y0, y1 = data.extent
    n = LIMITS.tile_grid
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y1 - (np.arange(n) + 0.5) * (y1 - y0) / n
    gx, gy = np.meshgrid(xs, ys)
    grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    with torch.no_grad():
        out = torch.tanh(model.hidden1(grid)).T.numpy()  # (units, n*n)
    q = np.frombuffer(base64.b64decode(layer["q"]), dtype=np.uint8).reshape(5, n * n)
    np.testing.assert_allclose(q / 127.0 - 1, out, atol=1 / 127 + 1e-6)
    np.testing.assert_allclose(layer["max"], out.max(1), rtol=1e-5)


# --------------------------------------------------------------------------- #19.7 in the lab
def test_a_zero_init_split_is_told_as_float_rounding(client):
    """Lab defaults, zero-init sigmoid: the measured distinct count decides what is said."""
    r = client.post("/api/train", json={"activation": "sigmoid", "weight_init": {"name": "zeros"}})
    frames = [e for e in events(r) if e["type"] == "progress"]
    first, last = frames[0], frames[-1]
    assert first["layers"][0]["distinct_units"] == 1
    distinct = last["layers"][0]["distinct_units"]
    symmetry = [v["message"] for v in last["verdicts"] if v["code"] == "symmetry"]
    if distinct > 1:
        assert last["symmetry_split"] == [
            {"layer": "hidden1", "units": 10, "initial": 1, "distinct": distinct, "message": symmetry[0]}]
        assert "float rounding" in symmetry[0] and "Adam" in symmetry[0] and f"now {distinct} distinct" in symmetry[0]
        assert "keeps them equal" not in symmetry[0]
    else:
        assert last["symmetry_split"] == []


def test_symmetry_split_from_counts_alone():
    out = {"name": "output", "units": 1, "distinct_units": 1}
    before = [{"name": "hidden1", "units": 10, "distinct_units": 1}, out]
    after = [{"name": "hidden1", "units": 10, "distinct_units": 2}, out]
    (split,) = runs.symmetry_split(before, after, "sgd")
    assert (split["initial"], split["distinct"]) == (1, 2) and "grown by training" in split["message"]
    assert runs.symmetry_split(before, before, "adam") == []
    distinct_from_start = [{"name": "hidden1", "units": 10, "distinct_units": 10}]
    assert runs.symmetry_split(distinct_from_start, distinct_from_start, "adam") == []


# --------------------------------------------------------------------------- the classic preset
def test_the_classic_preset_is_reproduces_run_with_the_same_numbers(client, tmp_path):
    from initlab.experiments.reproduce import classic_specs
    from initlab.experiments.run import run_experiment

    preset = client.get("/api/options").json()["presets"]["classic"]
    assert (preset["n_samples"], preset["hidden"], preset["optimizer"], preset["learning_rate"], preset["epochs"],
            preset["batch_size"], preset["validation_split"]) == (100, [10], "adam", 0.001, 100, 32, 0.2)
    body = {**preset, "activation": "relu", "weight_init": {"name": "he_normal"}, "seed": 0}
    done = events(client.post("/api/train", json=body))[-1]
    lab = done["results"]["experiments"][0]
    (spec,) = [s for s in classic_specs() if s.name == "he_relu"]
    assert lab["run_id"] == spec.run_id  # the same run, field for field
    ref = run_experiment(spec)  # what `initlab reproduce` runs (its single-model trainer)
    assert lab["val_accuracy"] == pytest.approx(ref.val_accuracy, abs=1e-6)
    assert lab["val_loss"] == pytest.approx(ref.val_loss, rel=1e-4)
    assert lab["train_accuracy"] == pytest.approx(ref.train_accuracy, abs=1e-6)


# --------------------------------------------------------------------------- pause and step
def test_pause_step_resume_a_run():
    app = create_app(min_run_seconds=0.0)
    with background(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        with http.stream("POST", "/api/train?paused=true", json={**FAST, "epochs": 5}) as stream:
            lines = (json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: "))
            start = next(lines)
            run_id = start["run_id"]
            first = next(lines)
            assert first["epoch"] == 0 and first["paused"]
            assert http.post(f"/api/runs/{run_id}/step").json() == {"run_id": run_id, "paused": True}
            assert next(lines)["epoch"] == 1
            assert http.post(f"/api/runs/{run_id}/resume").json()["paused"] is False
            rest = list(lines)
            assert rest[-1]["type"] == "done" and rest[-1]["summary"]["epochs_run"] == 5
        assert http.post("/api/runs/999999/pause").status_code == 404


# --------------------------------------------------------------------------- Playground #91: a sweep in the page
def test_a_sweep_trains_inits_by_seeds_and_matches_single_runs(client):
    inits = [{"name": "zeros"}, {"name": "he_normal"}]
    body = {**FAST, "epochs": 5, "inits": inits, "seeds": 3, "seed": 7}
    r = client.post("/api/sweep", json=body)
    assert r.status_code == 200, r.text[:300]
    out = r.json()
    assert out["seeds"] == 3 and [i["name"] for i in out["inits"]] == ["zeros", "he_normal"]
    he = out["inits"][1]
    assert he["seeds"] == [7, 8, 9]
    # each seed's number is the single run's (a separate /api/train with that seed)
    for seed, acc in zip(he["seeds"], he["accuracy"], strict=True):
        single = events(client.post("/api/train", json={**FAST, "epochs": 5, "seed": seed,
                                                         "weight_init": {"name": "he_normal"}}))[-1]["summary"]
        assert acc == pytest.approx(single["val_accuracy"], abs=1e-6)
    values = np.array(he["accuracy"])
    assert he["mean"] == pytest.approx(values.mean()) and he["std"] == pytest.approx(values.std(ddof=1))
    assert (he["min"], he["max"]) == (values.min(), values.max())


def test_a_sweep_is_bounded(client):
    r = client.post("/api/sweep", json={**FAST, "inits": [{"name": "zeros"}, {"name": "he_normal"}], "seeds": 11})
    assert r.status_code == 422 and r.json()["field"] == "seeds"
    big = {"epochs": 2000, "n_samples": 2000, "batch_size": 32, "seeds": 10,
           "inits": [{"name": "zeros"}, {"name": "normal"}, {"name": "he_normal"}, {"name": "glorot_uniform"}]}
    r = client.post("/api/sweep", json=big)
    assert r.status_code == 422 and f"at most {LIMITS.max_sweep_steps} minibatch steps" in r.json()["detail"]


# --------------------------------------------------------------------------- #20.5 theory beside practice
def test_variance_at_init_against_the_mean_field_prediction(client):
    from initlab.theory import predicted_preactivation_variance

    body = {**FAST, "activation": "tanh", "hidden": [64, 64, 64], "weight_init": {"name": "glorot_normal"}}
    theory = client.post("/api/preview", json=body).json()["theory"]
    from initlab.experiments.execute import Batch, build_stack
    from initlab.server.lab import load_data

    spec = TrainSpec(**body)
    data = load_data(spec)
    X = torch.as_tensor(data.X, dtype=torch.float64)
    q0 = float((X**2).mean())
    assert theory["q0"] == pytest.approx(q0)
    # glorot: Var(W) = 2 / (fan_in + fan_out), so sigma_w2 = 2 fan_in / (fan_in + fan_out)
    sizes = [2, 64, 64, 64]
    sigma_w2 = [2 * sizes[i] / (sizes[i] + sizes[i + 1]) for i in range(3)]
    assert theory["sigma_w2"] == pytest.approx(sigma_w2)
    assert theory["predicted"] == pytest.approx(list(predicted_preactivation_variance("tanh", sigma_w2, 0.0, q0)))
    model = build_stack(Batch(tuple(spec.specs())), data.dataset, data.split).to_model(0).double()
    h, measured = X, []
    for linear in model.requires_grad_(False).linears[:-1]:
        pre = linear(h)
        measured.append(float((pre**2).mean()))
        h = torch.tanh(pre)
    assert theory["measured"] == pytest.approx(measured, rel=1e-5)
    lsuv = client.post("/api/preview", json={**body, "weight_init": {"name": "lsuv"}}).json()["theory"]
    assert lsuv["predicted"] is None and "lsuv" in lsuv["unavailable"]


def test_weight_and_activation_histograms_per_layer(client):
    from initlab.experiments.execute import Batch, build_stack
    from initlab.server.lab import HIST_BINS, load_data

    body = {**FAST, "hidden": [10, 5], "activation": "relu"}
    hist = {h["layer"]: h for h in client.post("/api/preview", json=body).json()["histograms"]}
    assert list(hist) == ["hidden1", "hidden2", "output"] and "activations" not in hist["output"]
    spec = TrainSpec(**body)
    data = load_data(spec)
    model = build_stack(Batch(tuple(spec.specs())), data.dataset, data.split).to_model(0).requires_grad_(False)
    w = model.hidden2.weight.double().numpy().ravel()
    counts, _ = np.histogram(w, bins=HIST_BINS, range=(w.min(), w.max()))
    assert hist["hidden2"]["weights"]["counts"] == counts.tolist()
    a = torch.relu(model.hidden1(torch.as_tensor(data.X))).double().numpy().ravel()
    assert (hist["hidden1"]["activations"]["lo"], sum(hist["hidden1"]["activations"]["counts"])) == (a.min(), a.size)


# --------------------------------------------------------------------------- Playground #141: residual connections
RESIDUAL = {**FAST, "activation": "tanh", "hidden": [6, 6, 6], "weight_init": {"name": "glorot_normal"}, "seed": 1}


def _residual_by_hand(body: dict) -> tuple[list[torch.Tensor], list[torch.Tensor], object]:
    """Pre-activations and outputs of the hidden layers on the training rows, the skips written out
    here: h1 = tanh(W1 x + b1), then h_{l+1} = h_l + tanh(W h_l + b) for the equal-width layers."""
    from initlab.experiments.execute import Batch, build_stack
    from initlab.server.lab import load_data

    spec = TrainSpec(**body)
    data = load_data(spec)
    model = build_stack(Batch(tuple(spec.specs())), data.dataset, data.split).to_model(0).requires_grad_(False)
    h = torch.as_tensor(data.X, dtype=torch.float64)
    pre, outs = [], []
    for k, linear in enumerate(model.double().linears[:-1]):
        z = h @ linear.weight.T + linear.bias
        pre.append(z)
        h = torch.tanh(z) if k == 0 else h + torch.tanh(z)
        outs.append(h)
    return pre, outs, data


def test_a_residual_preview_measures_the_residual_network(client):
    body = {**RESIDUAL, "residual": True}
    preview = client.post("/api/preview", json=body).json()
    pre, outs, _ = _residual_by_hand(body)
    theory = preview["theory"]
    assert theory["measured"] == pytest.approx([float((z**2).mean()) for z in pre], rel=1e-5)
    # the mean-field length map models plain layers: no prediction is drawn, and the page is told why
    assert theory["predicted"] is None and "residual" in theory["unavailable"]
    hist = {h["layer"]: h for h in preview["histograms"]}
    a = outs[2].numpy().ravel()
    counts, _ = np.histogram(a, bins=len(hist["hidden3"]["activations"]["counts"]), range=(a.min(), a.max()))
    assert hist["hidden3"]["activations"]["lo"] == pytest.approx(a.min(), rel=1e-5)
    assert hist["hidden3"]["activations"]["counts"] == counts.tolist()
    plain = client.post("/api/preview", json=RESIDUAL).json()
    assert plain["theory"]["predicted"] is not None and plain["theory"]["unavailable"] is None
    # same seed, same initial weights with and without the skips (the flag is not a draw)
    assert plain["histograms"][1]["weights"] == preview["histograms"][1]["weights"]
    assert plain["theory"]["measured"][0] == pytest.approx(theory["measured"][0])
    assert plain["theory"]["measured"][2] != pytest.approx(theory["measured"][2], rel=1e-3)


def test_a_residual_run_trains_the_residual_network(client):
    r = client.post("/api/train", json={**RESIDUAL, "residual": True})
    evs = events(r)
    start, done = evs[0], evs[-1]
    assert start["run_specs"][0]["residual"] is True and done["type"] == "done"
    entry = done["results"]["experiments"][0]
    assert entry["spec"]["residual"] is True
    plain = events(client.post("/api/train", json=RESIDUAL))[-1]["results"]["experiments"][0]
    assert plain["spec"]["residual"] is False and plain["run_id"] != entry["run_id"]
    assert abs(entry["history"]["loss"][0] - plain["history"]["loss"][0]) > 1e-4
    # the lab's run is the run core's: the same spec through execute gives the same numbers
    from initlab.experiments import execute
    from initlab.server.lab import load_data

    spec = TrainSpec(**{**RESIDUAL, "residual": True})
    (record,) = execute(spec.specs(), data=load_data(spec).dataset)
    assert entry["history"]["loss"] == pytest.approx(list(record.history["loss"]), rel=1e-6)


def test_residual_is_a_checked_boolean_field(client):
    fields = client.get("/api/options").json()["fields"]
    assert fields["residual"]["default"] is False and "input" in fields["residual"]["help"]
    r = client.post("/api/preview", json={**FAST, "residual": "yes"})
    assert r.status_code == 422 and r.json()["field"] == "residual"


def test_options_give_the_choices_of_a_closed_field():
    fields = TestClient(create_app()).get("/api/options").json()["fields"]
    assert fields["loss"]["choices"] == ["auto", "bce", "ce", "mse"]
    assert fields["optimizer"]["choices"] == ["adam", "sgd", "rmsprop"]
    assert "choices" not in fields["epochs"]
