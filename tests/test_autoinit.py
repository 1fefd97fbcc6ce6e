"""initlab.autoinit (issue 10): every layer's scale on fresh data, the report, atomicity, bad input.

Scales are measured here with plain forward passes on data the init never saw, independently
of the report's own measurement.
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch
from torch import nn

import initlab
from initlab import ValidationError
from initlab.activations import activation_names, make_activation
from initlab.autoinit import AutoInitReport, UnhealthyInitError, autoinit
from initlab.autoinit.moments import MomentsDiverge, Stat, moments

WIDTH, DEPTH, BATCH = 128, 30, 128
LO, HI = 0.5, 2.0


class Swish(nn.Module):
    """A user-defined activation: x * sigmoid(x), nowhere in the catalog."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class ReLUPow(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x):
        return torch.relu(x) ** self.k


def mlp(act, depth=DEPTH, width=WIDTH, d_in=64):
    layers = [nn.Linear(d_in, width), act()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), act()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def data(seed, n=BATCH, d=64):
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(n, d, generator=g) + 0.5  # neither zero-mean nor unit scale


def linear_output_stds(model, x):
    """std of every Linear's output, by a plain forward pass through the Sequential."""
    out = []
    with torch.no_grad():
        for m in model:
            x = m(x)
            if isinstance(m, (nn.Linear,)):
                out.append(float(x.std()))
    return out


@pytest.mark.slow  # a 30-layer MLP per activation: 3-10 s each, about 60 s together
@pytest.mark.parametrize("act", activation_names() + ["custom"])
def test_deep_mlp_keeps_every_layer_in_range(act):
    torch.manual_seed(0)
    factory = Swish if act == "custom" else (lambda: make_activation(act))
    model = mlp(factory)
    report = autoinit(model, data(1), generator=0)
    stds = linear_output_stds(model, data(2))  # fresh data
    assert len(stds) == DEPTH + 1
    assert all(LO <= s <= HI for s in stds), (act, [round(s, 2) for s in stds])
    if act == "sigmoid":  # its mean 0.5 puts unit scale deep in the ordered phase (Glorot & Bengio 2010)
        (row,) = report.stability
        assert row["chi_1"] < 0.2 and row["gradient_gain"] < 1e-6 and row["fixable_by_scale"]
        with pytest.raises(UnhealthyInitError, match="gradients vanish; a scalar fixes it"):
            report.assert_healthy()
        target = row["critical_std"]  # the report's own fix: the scale where chi_1 = 1
        report = autoinit(model, data(1), generator=0, target_std=target)
        stds = linear_output_stds(model, data(2))
        assert all(LO * target <= s <= HI * target for s in stds), (target, stds)
        assert report.stability[0]["chi_1"] == pytest.approx(1.0, abs=0.05)
        # one judgement (issue 18.3): at that scale most sigmoid outputs sit where the slope is below 0.04 of
        # its largest (measured here by plain forward passes), which diagnose calls saturation: a problem
        saturated, x = [], data(1)
        with torch.no_grad():
            for m in model:
                if isinstance(m, nn.Sigmoid):
                    saturated.append(float((torch.sigmoid(x) * (1 - torch.sigmoid(x)) < 0.04 * 0.25).float().mean()))
                x = m(x)
        assert max(saturated) >= 0.5
        with pytest.raises(UnhealthyInitError, match="saturation"):
            report.assert_healthy()
        return
    report.assert_healthy()
    assert len(report.touched()) == 2 * (DEPTH + 1)  # every weight and bias


def test_default_torch_init_fails_the_same_check():
    """The check above can fail: PyTorch's default init shrinks a deep tanh MLP's signal."""
    torch.manual_seed(0)
    stds = linear_output_stds(mlp(nn.Tanh), data(2))
    assert min(stds) < LO


def test_stability_flags_relu_powers_with_the_mean_field_numbers():
    torch.manual_seed(0)
    for k in (2, 3):
        model = mlp(lambda k=k: ReLUPow(k), depth=12, width=64)
        report = autoinit(model, data(1), generator=0)
        (row,) = report.stability
        # phi = relu^k is homogeneous: chi_1 = k^2 / (2k - 1) at every scale, length-map slope k
        assert row["chi_1"] == pytest.approx(k * k / (2 * k - 1), rel=1e-6)
        assert row["length_slope"] == pytest.approx(k, rel=1e-6)
        assert row["stable"] is False and row["fixable_by_scale"] is False
        assert "no scalar init" in row["message"] and "LayerNorm" in row["message"]
        with pytest.raises(UnhealthyInitError, match="UNSTABLE"):
            report.assert_healthy()
    relu = autoinit(mlp(nn.ReLU, depth=4, width=32), data(1), generator=0).stability[0]
    assert relu["chi_1"] == pytest.approx(1.0, abs=1e-9) and relu["stable"]


class ResMLP(nn.Module):
    """Residual MLP without any normalization."""

    def __init__(self, width=WIDTH, depth=DEPTH):
        super().__init__()
        self.inp = nn.Linear(64, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width)) for _ in range(depth))

    def forward(self, x):
        x = self.inp(x)
        for b in self.blocks:
            x = x + b(x)
        return x


def test_residual_mlp_without_norms_keeps_the_stream_in_range():
    torch.manual_seed(0)
    model = ResMLP()
    report = autoinit(model, data(1), generator=0)
    assert report.info["residual_additions"] == DEPTH
    x, stream, pre = data(2), [], []
    with torch.no_grad():
        x = model.inp(x)
        for b in model.blocks:
            pre.append(float(b[0](x).std()))
            x = x + b(x)
            stream.append(float(x.std()))
    assert all(LO <= s <= HI for s in stream + pre), (stream, pre)
    # the stream's variance grows from 1 to about 2 (branch gain 1/sqrt(30))
    assert stream[-1] ** 2 == pytest.approx(2.0, rel=0.25)
    report.assert_healthy()


@pytest.mark.parametrize("norm", [nn.LayerNorm, nn.BatchNorm1d])
def test_normalized_mlp(norm):
    torch.manual_seed(0)
    layers = [nn.Linear(64, WIDTH)]
    for _ in range(DEPTH):
        layers += [norm(WIDTH), nn.SiLU(), nn.Linear(WIDTH, WIDTH)]
    model = nn.Sequential(*layers)
    running = [b.clone() for b in model.buffers()]
    report = autoinit(model, data(1), generator=0)
    assert all(torch.equal(a, b) for a, b in zip(running, model.buffers(), strict=False))  # BN statistics untouched
    stds = linear_output_stds(model, data(2))
    assert all(LO <= s <= HI for s in stds), stds
    norms = [e for e in report.left() if e.kind == "norm"]
    assert len(norms) == 2 * DEPTH and {e.reason for e in norms} == {"norm scale", "norm shift"}
    report.assert_healthy()


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder(norm_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True, norm_first=norm_first)
    model = nn.TransformerEncoder(layer, 6, enable_nested_tensor=False)
    g = torch.Generator().manual_seed(1)
    report = autoinit(model, torch.randn(8, 16, 64, generator=g), generator=0)
    x = torch.randn(8, 16, 64, generator=torch.Generator().manual_seed(2))
    outs = []
    with torch.no_grad():
        for lyr in model.layers:
            x = lyr(x)
            outs.append(float(x.std()))
    assert all(LO <= s <= HI for s in outs), outs
    attn = [e for e in report.touched() if e.kind == "attention"]
    assert len(attn) == 12
    report.assert_healthy()
    assert report.info["residual_additions"] == (12 if norm_first else 1)


def test_gpt2_tied_head():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=100, n_positions=32,
                                  bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg)
    ids = torch.randint(0, 100, (8, 16), generator=torch.Generator().manual_seed(1))
    report = autoinit(model, ids, generator=0)
    by_name = {e.name: e for e in report.entries}
    assert by_name["lm_head.weight"].action == "left"
    assert by_name["lm_head.weight"].reason == "tied to transformer.wte.weight"
    assert model.lm_head.weight is model.transformer.wte.weight
    assert by_name["transformer.wte.weight"].std == pytest.approx(1.0)
    # the tied head's logits: std about sqrt(n_embd) = 8 with unit-variance embeddings and LayerNorm'd inputs
    assert by_name["lm_head.weight"].measured_std == pytest.approx(8.0, rel=0.15)
    assert any(w.startswith("lm_head.weight is tied to transformer.wte.weight") for w in report.warnings)
    fresh = torch.randint(0, 100, (8, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        hidden = model(fresh, output_hidden_states=True).hidden_states
    assert all(LO <= float(h.std()) <= HI for h in hidden), [float(h.std()) for h in hidden]
    # the logits miss the target by x8 (issue 19 item 4: a missed target is a problem, not only a warning)
    with pytest.raises(UnhealthyInitError, match="lm_head: measured output std"):
        report.assert_healthy()


def test_same_seed_same_weights_and_report_forms():
    torch.manual_seed(0)
    a, b = mlp(nn.GELU, depth=3, width=16), mlp(nn.GELU, depth=3, width=16)
    ra = autoinit(a, data(1), generator=7)
    autoinit(b, data(1), generator=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=False))
    assert isinstance(ra, AutoInitReport) and ra.mode == "analytic"
    d = json.loads(json.dumps(ra.to_dict()))
    assert [e["name"] for e in d["entries"]] == [n for n, _ in a.named_parameters()]
    table = ra.table()
    assert list(table.columns)[:4] == ["name", "module", "kind", "action"] and len(table) == 8
    assert "healthy" in ra._repr_html_() and "touched=8" in repr(ra)
    first = ra.entries[0]
    assert first.predicted_std == pytest.approx(1.0) and first.measured_std == pytest.approx(1.0, rel=0.1)
    assert first.std == pytest.approx(1.0 / math.sqrt(64 * float((data(1) ** 2).mean())), rel=1e-6)


def test_top_level_name_and_inferred_example():
    model = mlp(nn.ReLU, depth=2, width=16)
    report = initlab.autoinit(model, generator=0)  # no example: drawn for the first Linear's in_features
    assert len(report.touched()) == 6
    report = initlab.autoinit(model, input_shape=(32, 64), generator=0)
    assert report.info["residual_additions"] == 0


class Rejects(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        if h.shape[0] > 1:  # fine on a batch of 2 or more, rejects anything else
            return self.fc2(h)
        raise RuntimeError("batch too small")


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_failures_leave_the_model_untouched():
    model = Rejects()
    before = _state(model)
    with pytest.raises(ValidationError, match="rejected the example"):
        autoinit(model, torch.randn(1, 4))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    class Diverges(nn.Module):
        def forward(self, x):
            return torch.exp(x * x)

    model = nn.Sequential(nn.Linear(8, 8), Diverges(), nn.Linear(8, 8))
    before = _state(model)
    with pytest.raises(MomentsDiverge, match="diverge"):
        autoinit(model, torch.randn(16, 8))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_input_is_one_line():
    with pytest.raises(ValidationError, match="did you mean 'analytic'"):
        autoinit(nn.Linear(2, 2), torch.randn(4, 2), mode="analytc")
    with pytest.raises(ValidationError, match="cannot be traced by torch.fx .* pass example="):
        autoinit(Rejects())  # data-dependent control flow, no example
    with pytest.raises(ValidationError, match="target_std"):
        autoinit(nn.Linear(2, 2), torch.randn(4, 2), target_std=0)
    with pytest.raises(ValidationError, match="input_shape"):
        autoinit(nn.Linear(2, 2), input_shape=(0, 2))


def test_moment_map_matches_closed_form_and_monte_carlo():
    r = moments(torch.relu, Stat(0.0, 1.0), "relu")
    assert r.method == "quadrature"
    assert r.out.mean == pytest.approx(1 / math.sqrt(2 * math.pi), abs=1e-10)
    assert r.out.var == pytest.approx(0.5 - 1 / (2 * math.pi), abs=1e-10)
    # a jump away from the split point: quadrature is off, the Monte Carlo check catches it
    step = moments(lambda u: (u > 0.7).double() * 10.0, Stat(0.0, 1.0), "step")
    p = 0.5 * math.erfc(0.7 / math.sqrt(2))
    assert step.out.mean == pytest.approx(10 * p, rel=0.02)


@pytest.mark.skipif(importlib.util.find_spec("initlab.autoinit.empirical") is None,
                    reason="the empirical mode lives on the lsuv branch")
def test_empirical_mode_dispatch():
    torch.manual_seed(0)
    model = mlp(nn.Tanh, depth=10, width=64)
    report = autoinit(model, data(1), mode="empirical", generator=0)
    assert report.mode == "empirical"
    stds = linear_output_stds(model, data(2))
    assert all(LO <= s <= HI for s in stds), stds
    (row,) = report.stability  # the stability analysis runs for both modes
    assert row["activation"] == "Tanh" and row["layers"] == 10 and row["chi_1"] > 1


def test_doctor_init_auto(tmp_path, capsys):
    from initlab.cli.main import main

    src = tmp_path / "deep.py"
    src.write_text("import torch\nfrom torch import nn\n\ndef deep_tanh():\n"
                   "    layers = []\n    for _ in range(20):\n        layers += [nn.Linear(32, 32), nn.Tanh()]\n"
                   "    return nn.Sequential(*layers, nn.Linear(32, 2))\n")
    code = main(["doctor", f"{src}:deep_tanh", "--input-shape", "32", "--init", "auto", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert data["init"] == "auto"
    assert [v["code"] for v in data["before"]["verdicts"]] == ["vanishing_gradients"]
    assert [v["code"] for v in data["after"]["verdicts"]] == ["healthy"]
    assert "auto" in out


class RawAndSkip(nn.Module):
    """A raw Parameter used with @, and a sum whose second term is no weight layer's output."""

    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.randn(64, 48))
        self.fc = nn.Linear(48, 48)
        self.side = nn.Linear(64, 48)
        self.side2 = nn.Linear(64, 48)

    def forward(self, x):
        h = self.fc(torch.tanh(x @ self.W))
        y = h + torch.relu(self.side(x))  # h existed first: it is not a residual branch to shrink
        return y + torch.relu(self.side2(x))  # a stream of two additions (R = 2)


def test_raw_parameter_and_plain_sum():
    torch.manual_seed(0)
    model = RawAndSkip()
    report = autoinit(model, data(1), generator=0)
    by_name = {e.name: e for e in report.entries}
    w = by_name["W"]
    assert w.action == "touched" and w.kind == "linear"
    assert w.std == pytest.approx(1.0 / math.sqrt(64 * float((data(1) ** 2).mean())), rel=1e-6)
    with torch.no_grad():
        assert float((data(2) @ model.W).std()) == pytest.approx(1.0, rel=0.15)
    assert report.info["residual_additions"] == 2 and report.info["residual_branches"] == []
    assert by_name["fc.weight"].predicted_std == pytest.approx(1.0)


class Einsum(nn.Module):
    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.full((16, 64), 0.5))
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(torch.einsum("bi,oi->bo", x, self.W))


def test_unknown_layer_is_left_and_named():
    model = Einsum()
    report = autoinit(model, data(1), generator=0)
    by_name = {e.name: e for e in report.entries}
    assert by_name["W"].action == "left" and by_name["W"].reason == "unknown layer Einsum (op einsum)"
    assert torch.equal(model.W, torch.full((16, 64), 0.5))
    assert any("einsum" in w for w in report.warnings)
    # the layer after it is scaled from the measured moments of the einsum's output
    with torch.no_grad():
        assert float(model.fc(torch.einsum("bi,oi->bo", data(2), model.W)).std()) == pytest.approx(1.0, rel=0.2)


class PosAndScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(64))
        self.fc = nn.Linear(64, 64)
        self.gamma = nn.Parameter(torch.full((64,), 0.1))

    def forward(self, x):
        return self.gamma * self.fc(x + self.pos)


def test_parameters_used_as_offsets_and_gains_are_left_with_the_reason():
    report = autoinit(PosAndScale(), data(1), generator=0)
    by_name = {e.name: e for e in report.entries}
    assert by_name["pos"].reason == "added to the signal (an offset); left as built"
    assert by_name["gamma"].reason == "multiplies the signal (a gain); left as built"
    assert by_name["fc.weight"].action == "touched"


@pytest.mark.parametrize("mode", ["analytic", "empirical"])
def test_dropout_is_off_while_initializing_and_the_modes_come_back(mode):
    """Init-time conditions, as LSUV's: a model handed over in training mode is measured without
    dropout (with p = 0.5 on, the next layer's std would be ~sqrt(2) higher), and every module's
    train/eval flag is as it was afterwards."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 64), nn.ReLU(),
                          nn.Dropout(0.5), nn.Linear(64, 8))
    model.train()
    model[5].eval()  # a mixed state must come back as it was, too
    flags = [m.training for m in model.modules()]
    x = torch.randn(512, 32, generator=torch.Generator().manual_seed(1))
    report = initlab.autoinit(model, x, mode=mode, generator=0)
    assert [m.training for m in model.modules()] == flags

    outs = {}
    hooks = [model[i].register_forward_hook(lambda m, a, y, i=i: outs.__setitem__(i, float(y.std(unbiased=False))))
             for i in (3, 6)]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    by_name = {e.name: e for e in report.entries}
    for i in (3, 6):
        assert by_name[f"{i}.weight"].measured_std == pytest.approx(outs[i], rel=1e-4)
