"""initlab transfer (issue 24): parametrization formulas, the drift on synthetic cells with a known
drift, the stacked trainer against a plain torch.optim.Adam loop, the coordinate check of muP vs
SP, the JSON contract, determinism, the store's resume and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import initlab
from initlab.cli.main import main
from initlab.transfer import analysis, parametrize
from initlab.transfer.engine import _batch_indices, train_stacked
from initlab.transfer.families import build_family, digits_task, sequence_task
from initlab.transfer.parametrizations import get

TINY = dict(widths=[16, 32], lrs="2^-8:2^-4", seeds=2, steps=6)


# -- parametrizations ---------------------------------------------------------------------------

def _mlp(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))


def test_mup_rules_follow_table_3_for_adam():
    p = parametrize(_mlp(256), "mup", base_width=64, generator=torch.Generator().manual_seed(0))
    rules = {r.name: r for r in p.rules}
    # Tensor Programs V, Table 3 (Adam), relative to base width 64: m = 4
    assert rules["0.weight"].role == "input" and rules["0.weight"].lr_factor == 1.0
    assert rules["0.weight"].std == pytest.approx(1 / math.sqrt(8))
    assert rules["2.weight"].role == "hidden" and rules["2.weight"].lr_factor == pytest.approx(64 / 256)
    assert rules["2.weight"].std == pytest.approx(1 / 16)
    assert rules["4.weight"].role == "readout" and rules["4.weight"].lr_factor == pytest.approx(64 / 256)
    assert rules["4.weight"].std == pytest.approx(math.sqrt(64) / 256)  # variance base / fan_in^2
    assert rules["0.bias"].role == "vector" and rules["0.bias"].lr_factor == 1.0
    # the weights were redrawn with those stds, the biases zeroed
    assert p.model[4].weight.std().item() == pytest.approx(math.sqrt(64) / 256, rel=0.1)
    assert p.model[0].bias.abs().max().item() == 0.0
    groups = p.param_groups(1e-2)
    assert sorted(g["lr"] for g in groups) == pytest.approx([1e-2 / 4, 1e-2])
    assert sum(len(g["params"]) for g in groups) == 6


def test_mup_equals_sp_at_the_base_width():
    sp = {r.name: (r.std, r.lr_factor) for r in parametrize(_mlp(64), "sp", init=False).rules}
    mup = {r.name: (r.std, r.lr_factor) for r in parametrize(_mlp(64), "mup", base_width=64, init=False).rules}
    assert sp == mup  # m = 1: every factor is exactly 1


def test_umup_and_depth_rules():
    u = get("u-mup")
    assert u.rule("hidden", 256, 256) == pytest.approx((1 / 16, 1 / 256))  # A = C = 1/sqrt(fan-in)
    assert u.rule("readout", 256, 10) == pytest.approx((1 / 256, 1 / 256))  # A = 1/fan-in, C = 1
    assert u.rule("input", 1, 256) == pytest.approx((1.0, 1 / 16))  # embedding: C = 1/sqrt(fan-out)
    # CompleteP (alpha = 1): branch output std and lr x 1/d, hidden lr x d^0; depth-muP: 1/sqrt(d) and 1/d
    c, d = get("completep"), get("depth-mup")
    assert c.rule("hidden", 64, 64, 1.0, 4.0, branch_output=True, in_block=True) == pytest.approx((1 / 32, 1 / 4))
    assert c.rule("hidden", 64, 64, 1.0, 4.0, branch_output=False, in_block=True) == pytest.approx((1 / 8, 1.0))
    assert d.rule("hidden", 64, 64, 1.0, 4.0, branch_output=True, in_block=True) == pytest.approx((1 / 16, 1 / 4))
    assert d.rule("hidden", 64, 64, 1.0, 4.0, branch_output=False, in_block=True) == pytest.approx((1 / 8, 1 / 2))


def _scales(width: int, name: str, seed: int, steps: int = 5, lr: float = 1e-2) -> tuple[float, float]:
    """mean |x| of the last hidden ReLU and of the logits after ``steps`` Adam steps on one fixed
    batch (muP's coordinate check, as ``initlab.coord_check`` measures it), through ``param_groups``."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(64, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    model = _mlp(width)
    p = parametrize(model, name, base_width=64, generator=g)
    opt = torch.optim.Adam(p.param_groups(lr))
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        return float(model[:4](x).abs().mean()), float(model(x).abs().mean())


@pytest.mark.slow
def test_coord_check_mup_stays_flat_where_sp_grows():
    from initlab.coordcheck import FLAT_SLOPE

    widths = [64, 128, 256, 512]
    slopes = {}
    for name in ("sp", "mup"):
        scale = np.array([np.mean([_scales(w, name, s) for s in range(2)], axis=0) for w in widths])  # (widths, 2)
        slopes[name] = [np.polyfit(np.log(widths), np.log(scale[:, i]), 1)[0] for i in range(2)]
    # measured (lr 1e-2, 5 steps): muP hidden +0.06, logits -0.03; SP logits +0.42
    assert abs(slopes["mup"][0]) < FLAT_SLOPE and abs(slopes["mup"][1]) < FLAT_SLOPE  # coord-check's "flat"
    assert slopes["sp"][1] > 0.3  # SP's logits grow: an Adam update of lr per entry summed over width inputs


def test_parametrize_rejects_unknown_names():
    with pytest.raises(initlab.ValidationError, match="did you mean 'mup'"):
        parametrize(_mlp(16), "mpu")
    with pytest.raises(initlab.ValidationError, match="at least one nn.Linear"):
        parametrize(nn.ReLU(), "mup")


# -- the drift analysis -------------------------------------------------------------------------

def _synthetic(drift: float, noise: float, seed: int = 0) -> dict[int, np.ndarray]:
    """log(loss) = 0.2 (log2 lr - c(w))^2 with c(w) = -6 + drift log2(w/64), plus noise per seed."""
    x = np.arange(-12, 0, 1.0)
    rng = np.random.default_rng(seed)
    out = {}
    for w in (64, 128, 256, 512, 1024):
        c = -6 + drift * math.log2(w / 64)
        out[w] = np.exp(0.2 * (x - c) ** 2 + noise * rng.standard_normal((3, x.size)))
    return out


@pytest.mark.parametrize("true", [-0.5, 0.0, 0.75])
def test_drift_recovers_a_known_drift(true):
    d = analysis.drift("x", "width", np.arange(-12, 0, 1.0), _synthetic(true, 0.0))
    # without noise the parabola through three points of a parabola finds its vertex exactly
    assert d.best_log2_lr == pytest.approx([-6 + true * k for k in range(5)], abs=1e-9)
    assert d.octaves_per_doubling == pytest.approx(true, abs=1e-9)
    assert d.interval == pytest.approx([true, true], abs=1e-9)
    assert d.verdict == ("transfers" if true == 0 else "drifts")


def test_drift_interval_covers_the_truth_under_noise_and_verdicts():
    noisy = analysis.drift("x", "width", np.arange(-12, 0, 1.0), _synthetic(-0.5, 0.05))
    lo, hi = noisy.interval
    assert lo < -0.5 < hi and hi < 0
    assert noisy.verdict == "drifts"
    flat = analysis.drift("x", "width", np.arange(-12, 0, 1.0), _synthetic(0.0, 0.05))
    assert flat.verdict == "transfers" and -0.25 <= flat.interval[0] and flat.interval[1] <= 0.25
    # the valley leaves the grid: undetermined
    edge = analysis.drift("x", "width", np.arange(-12, 0, 1.0), _synthetic(-2.0, 0.0))
    assert edge.at_edge[-1] and edge.verdict == "undetermined"
    # one seed: no spread to bootstrap, no verdict
    one = analysis.drift("x", "width", np.arange(-12, 0, 1.0), {k: v[:1] for k, v in _synthetic(0.0, 0.05).items()})
    assert one.verdict == "undetermined"


def test_verdict_table():
    assert analysis.verdict(0.1, -0.2, 0.24, False) == "transfers"
    assert analysis.verdict(-0.6, -0.8, -0.4, False) == "drifts"
    assert analysis.verdict(-0.3, -0.5, 0.1, False) == "undetermined"  # interval holds 0
    assert analysis.verdict(-0.2, -0.4, -0.05, False) == "undetermined"  # excludes 0, estimate within tolerance
    assert analysis.verdict(0.0, 0.0, 0.0, True) == "undetermined"


def test_diverged_cells_count_as_the_worst_loss():
    losses = {64: np.array([[1.0, 0.1, 0.5, np.nan]] * 2), 128: np.array([[1.0, 0.1, 0.5, np.nan]] * 2)}
    d = analysis.drift("x", "width", np.array([-4.0, -3.0, -2.0, -1.0]), losses)
    assert all(-4 < b < -2 for b in d.best_log2_lr) and d.octaves_per_doubling == pytest.approx(0.0)


# -- the trainer --------------------------------------------------------------------------------

def test_stacked_trainer_matches_plain_adam_loops():
    task = digits_task()
    task.x, task.y = task.x[:256], task.y[:256]
    task.eval_x, task.eval_y = task.x, task.y
    lrs, seeds = [1e-3, 1e-2, 1e-2], [0, 0, 1]
    spec = get("mup")
    params, rules, forward = build_family("mlp", spec, task, 32, 1, 16, 1, seeds)
    start = {n: p.detach().clone() for n, p in params.items()}
    got = train_stacked(forward, params, {n: r.lr_factor for n, r in rules.items()}, lrs, seeds, task, 8, 32)
    index = _batch_indices(seeds, 256, 32, 8)
    for j in range(3):
        w = {n: start[n][j].clone().requires_grad_(True) for n in start}
        opt = torch.optim.Adam([{"params": [w[n]], "lr": lrs[j] * rules[n].lr_factor} for n in w], eps=1e-8)
        for t in range(8):
            rows = index[t, j]
            h = task.x[rows] @ w["w_in"]
            h = h + torch.relu(h) @ w["w0"]
            loss = nn.functional.cross_entropy(torch.relu(h) @ w["w_out"], task.y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            h = task.x @ w["w_in"]
            h = h + torch.relu(h) @ w["w0"]
            want = float(nn.functional.cross_entropy(torch.relu(h) @ w["w_out"], task.y))
        assert got[j] == pytest.approx(want, rel=1e-4)


def test_transformer_family_trains_and_its_logits_have_the_task_shape():
    task = sequence_task()
    params, rules, forward = build_family("transformer", get("mup"), task, 16, 2, 16, 1, [0, 1])
    assert forward(params, task.x[:3].expand(2, 3, 16)).shape == (2, 3, 16, 32)
    assert rules["b1.out"].branch_output and rules["readout"].role == "readout"
    factors = {n: r.lr_factor for n, r in rules.items()}
    before = train_stacked(forward, params, factors, [1e-9, 1e-9], [0, 1], task, 1, 8)
    params, _, forward = build_family("transformer", get("mup"), task, 16, 2, 16, 1, [0, 1])
    after = train_stacked(forward, params, factors, [3e-2, 3e-2], [0, 1], task, 12, 8)
    assert all(a < b for a, b in zip(after, before, strict=True))
    assert before[0] == pytest.approx(math.log(32), rel=0.1)  # near-uniform logits at init: muP's small readout


# -- the grid, its JSON, store and CLI ----------------------------------------------------------

def test_json_contract(tmp_path, capsys):
    assert main(["transfer", "--widths", "16,32", "--lrs", "2^-8:2^-4", "--seeds", "2", "--steps", "6",
                 "--parametrizations", "sp,mup", "--out", str(tmp_path / "o"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["parametrization"], d["axis"]) for d in data["drift"]] == [("sp", "width"), ("mup", "width")]
    for d in data["drift"]:
        assert {"parametrization", "axis", "octaves_per_doubling", "interval", "verdict"} <= set(d)
        assert len(d["interval"]) == 2 and d["verdict"] in ("transfers", "drifts", "undetermined")
        assert d["interval"][0] <= d["octaves_per_doubling"] + 1e-9 or d["verdict"] == "undetermined"
    assert len(data["cells"]) == 2 * 2 * 5 * 2
    cell = data["cells"][0]
    assert set(cell) == {"parametrization", "width", "depth", "lr", "seed", "loss"}
    assert {c["lr"] for c in data["cells"]} == {2.0 ** k for k in range(-8, -3)}
    assert all(c["loss"] is None or c["loss"] > 0 for c in data["cells"])
    for name in ("transfer.json", "cells.csv", "transfer.png", "transfer_drift.png"):
        assert (tmp_path / "o" / name).stat().st_size > 0


def test_same_seed_same_numbers():
    a = initlab.transfer(parametrizations="mup", **TINY)
    b = initlab.transfer(parametrizations="mup", **TINY)
    assert [c.loss for c in a.cells] == [c.loss for c in b.cells]
    assert a.drift[0].to_dict() == b.drift[0].to_dict()


def test_store_resumes_without_recomputing(tmp_path):
    db = tmp_path / "grid.db"
    half = initlab.transfer(parametrizations="sp", store=db, **TINY)
    assert half.trained == 20
    full = initlab.transfer(parametrizations="sp,mup", store=db, **TINY)
    assert full.trained == 20  # only mup's cells were trained
    again = initlab.transfer(parametrizations="sp,mup", store=db, **TINY)
    assert again.trained == 0
    fresh = initlab.transfer(parametrizations="sp,mup", **TINY)
    assert [c.loss for c in again.cells] == pytest.approx([c.loss for c in fresh.cells], rel=1e-6)
    # other settings are other cells
    assert initlab.transfer(parametrizations="sp", store=db, **{**TINY, "steps": 5}).trained == 20


def test_depth_axis_and_user_factory(tmp_path):
    f = tmp_path / "model.py"
    f.write_text(
        "from torch import nn\n"
        "def make(width, depth=1):\n"
        "    layers = [nn.Linear(64, width), nn.ReLU()]\n"
        "    for _ in range(depth):\n"
        "        layers += [nn.Linear(width, width), nn.ReLU()]\n"
        "    return nn.Sequential(*layers, nn.Linear(width, 10))\n")
    from initlab.diagnostics.doctor import load_factory

    r = initlab.transfer(load_factory(f"{f}:make"), depths=[1, 2], parametrizations="mup", **TINY)
    assert [(d.axis, d.sizes) for d in r.drift] == [("width", [16, 32]), ("depth", [1, 2])]
    assert {(c.width, c.depth) for c in r.cells} == {(16, 1), (32, 1), (16, 2)}
    assert all(math.isfinite(c.loss) for c in r.cells)


@pytest.mark.parametrize("args, field", [
    (["--widths", "16"], "widths"),
    (["--widths", "16,abc"], "widths"),
    (["--lrs", "2^-4:2^-8"], "lrs"),
    (["--lrs", "0.1,0.2"], "lrs"),
    (["--lrs", "fast"], "lrs"),
    (["--parametrizations", "sp,mpu"], "parametrization"),
    (["--family", "cnn"], "family"),
    (["--seeds", "0"], "seeds"),
    (["--steps", "0"], "steps"),
    (["--family", "transformer", "--widths", "30,60"], "multiples of 4"),
    (["--task", "sequence"], "task"),
    (["nofile.py:make"], "nofile.py"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, field):
    assert main(["transfer", *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err
    assert not (tmp_path / "o").exists()


def test_user_models_go_through_vmap_and_fall_back_to_a_loop():
    from initlab.transfer.engine import stacked_module_forward

    class Branchy(nn.Module):  # data-dependent control flow: vmap cannot take it
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(64, 16), nn.Linear(16, 10)

        def forward(self, x):
            h = torch.relu(self.a(x))
            return self.b(h) if float(h.detach().sum()) >= 0 else -self.b(h)

    torch.manual_seed(0)
    plain = [nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)) for _ in range(2)]
    branchy = [Branchy() for _ in range(2)]
    for p, b in zip(plain, branchy, strict=True):
        b.a.load_state_dict(p[0].state_dict())
        b.b.load_state_dict(p[2].state_dict())
    x = torch.randn(2, 5, 64)
    pv, fv = stacked_module_forward(plain)
    pl, fl = stacked_module_forward(branchy)
    out_v, out_l = fv(pv, x), fl({"a.weight": pl["a.weight"], "a.bias": pl["a.bias"], "b.weight": pl["b.weight"],
                                   "b.bias": pl["b.bias"]}, x)
    assert fv.mode["forward"] is not None and fl.mode["forward"].__name__ == "looped"
    assert fv.mode["forward"].__name__ != "looped"
    assert torch.allclose(out_v, out_l, atol=1e-6)
    want = torch.stack([plain[j](x[j]) for j in range(2)])
    assert torch.allclose(out_v, want, atol=1e-6)


def test_store_keys_an_edited_model_file_as_a_new_model(tmp_path):
    from initlab.diagnostics.doctor import load_factory

    db, f = tmp_path / "grid.db", tmp_path / "net.py"
    body = "from torch import nn\ndef make(width):\n    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), {})\n"
    f.write_text(body.format("nn.Linear(width, 10)"))
    kw = dict(parametrizations="sp", store=db, **{**TINY, "widths": [8, 16], "steps": 2})
    assert initlab.transfer(load_factory(f"{f}:make"), **kw).trained == 20
    assert initlab.transfer(load_factory(f"{f}:make"), **kw).trained == 0
    f.write_text(body.format("nn.Tanh(), nn.Linear(width, 10)"))
    assert initlab.transfer(load_factory(f"{f}:make"), **kw).trained == 20


def test_cli_table_names_each_parametrization_and_its_verdict(tmp_path, capsys):
    assert main(["transfer", "--widths", "16,32", "--lrs", "2^-8:2^-4", "--seeds", "2", "--steps", "4",
                 "--parametrizations", "sp", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "o" / "transfer.json").read_text())
    verdict = data["drift"][0]["verdict"]
    row = next(line for line in out.splitlines() if line.strip().startswith("sp"))
    assert "width" in row and verdict in row and f"{data['drift'][0]['octaves_per_doubling']:+.2f}" in row


def test_transfer_leaves_the_global_rng_alone(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from torch import nn\ndef make(width):\n    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), "
                 "nn.Linear(width, 10))\n")
    from initlab.diagnostics.doctor import load_factory

    state = torch.random.get_rng_state()
    initlab.transfer(parametrizations="mup", **{**TINY, "steps": 2})
    initlab.transfer(load_factory(f"{f}:make"), parametrizations="sp", **{**TINY, "steps": 2})
    assert torch.equal(torch.random.get_rng_state(), state)
