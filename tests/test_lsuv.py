"""Graph LSUV (initializers/lsuv.py) and autoinit's empirical mode (autoinit/empirical.py).

Every variance is measured here independently of the code under test: hooks in the test, in eval
mode, on a copy of the model with out-of-place activations where the model's are in place.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab import DataError, apply_init
from initlab.autoinit.empirical import empirical_init
from initlab.initializers.lsuv import lsuv_model

TOL = 0.1


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@torch.enable_grad()  # grad on: attention's fused fast path (which skips submodule hooks) stays off
def _output_variances(model: nn.Module, example) -> dict[str, float]:
    """Output variance of every Linear/Conv, and of attention's q, k, v and output, measured in eval mode."""
    model = copy.deepcopy(model).eval()
    for m in model.modules():
        if isinstance(m, (nn.ReLU, nn.ReLU6, nn.ELU, nn.LeakyReLU)):
            m.inplace = False
    out: dict[str, float] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            def pre(mod, args, name=name):
                e = mod.embed_dim
                for i, letter in enumerate("qkv"):
                    w, b = mod.in_proj_weight[i * e:(i + 1) * e], mod.in_proj_bias[i * e:(i + 1) * e]
                    out[f"{name}.{letter}"] = float(F.linear(args[i], w, b).detach().var())
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(
                lambda mod, i, o, name=name: out.__setitem__(f"{name}.out", float(o[0].detach().var()))))
        elif isinstance(m, (nn.Linear, nn.Conv2d)) and not name.endswith("out_proj"):
            handles.append(m.register_forward_hook(lambda mod, i, o, name=name: out.__setitem__(name, float(o.detach().var()))))
    try:
        model(example)
    finally:
        for h in handles:
            h.remove()
    return out


def _encoder() -> nn.Module:
    torch.manual_seed(0)  # only the construction draw; every init below takes a generator
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


def _vgg(inplace: bool = True, bn: bool = False) -> nn.Module:
    torch.manual_seed(0)

    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), *([nn.BatchNorm2d(c_out)] if bn else []), nn.ReLU(inplace=inplace)]
    return nn.Sequential(*block(3, 16), *block(16, 16), nn.MaxPool2d(2), *block(16, 32), *block(32, 32),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(inplace=inplace),
                         nn.Dropout(0.5), nn.Linear(64, 10))


@pytest.mark.parametrize("how", ["apply_init", "empirical"])
def test_transformer_encoder_every_weight_lands_at_unit_variance(how):
    model, x = _encoder(), torch.randn(16, 12, 32, generator=_gen(1))
    if how == "apply_init":
        apply_init(model, "lsuv", data=x, generator=0)
    else:
        _, info = empirical_init(model, x, generator=0)
        assert info["converged"] and info["passes"] <= 3
    variances = _output_variances(model, x)
    expected = {f"layers.{i}.{n}" for i in range(2)
                for n in ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.out", "linear1", "linear2")}
    assert set(variances) == expected
    for name, var in variances.items():
        assert abs(var - 1.0) < TOL, (name, var)


def test_inplace_relu_cnn_lands_within_tol_measured_without_inplace():
    model, x = _vgg(inplace=True), torch.randn(32, 3, 16, 16, generator=_gen(2))
    apply_init(model, "lsuv", data=x, generator=0)
    variances = _output_variances(model, x)  # on a copy with ReLU(inplace=False)
    assert len(variances) == 6
    for name, var in variances.items():
        assert abs(var - 1.0) < TOL, (name, var)


def test_one_forward_fixes_every_layer_of_a_deep_chain():
    # 20 tanh layers: the first pass measures, the second fixes every layer (each fix is handed on inside
    # the pass), the third only confirms.
    torch.manual_seed(0)
    layers = [m for _ in range(20) for m in (nn.Linear(64, 64), nn.Tanh())]
    model, x = nn.Sequential(*layers), torch.randn(256, 64, generator=_gen(3))
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    result = lsuv_model(model, x, tol=0.01)
    assert result.passes == 3 and len(calls) == 3 and result.converged
    assert all(u.iterations == 1 for u in result.units)
    assert result.units[-1].initial_variance < 0.5  # orthogonal-free default init: tanh shrinks the signal
    for var in _output_variances(model, x).values():
        assert abs(var - 1.0) < 0.01


def test_nonzero_biases_are_solved_for_not_ignored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    x = torch.randn(512, 16, generator=_gen(4))
    apply_init(model, "lsuv", bias={"name": "normal", "std": 0.5}, data=x, generator=0)
    assert all(float(m.bias.detach().std()) > 0.3 for m in model if isinstance(m, nn.Linear))  # biases kept
    for var in _output_variances(model, x).values():
        assert abs(var - 1.0) < TOL


@pytest.mark.parametrize("how", ["apply_init", "empirical"])
def test_batchnorm_running_statistics_and_modes_are_untouched(how):
    model, x = _vgg(bn=True), torch.randn(16, 3, 16, 16, generator=_gen(5))
    model.train()
    model[-2].eval()  # a user's own mix of modes comes back as it was
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    modes = {n: m.training for n, m in model.named_modules()}
    if how == "apply_init":
        apply_init(model, "lsuv", data=x, generator=0)
    else:
        empirical_init(model, x, generator=0)
    assert len(buffers) == 12 and all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())
    assert {n: m.training for n, m in model.named_modules()} == modes


class _Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom: deliberately failing\nsecond line")


@pytest.mark.parametrize("how", ["apply_init", "empirical"])
@pytest.mark.parametrize("tail", ["shape", "raises", "nan"])
def test_a_failing_example_leaves_the_model_bit_identical(how, tail):
    torch.manual_seed(0)
    last = {"shape": nn.Linear(16, 3), "raises": _Boom(), "nan": nn.Linear(8, 3)}[tail]
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 8), nn.BatchNorm1d(8), last)
    x = torch.randn(32, 4, generator=_gen(6))
    if tail == "nan":
        x[0, 0] = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DataError) as err:
        if how == "apply_init":
            apply_init(model, "lsuv", data=x, generator=0)
        else:
            empirical_init(model, x, generator=0)
    message = str(err.value)
    assert "\n" not in message and message.startswith("example: ")
    assert {"shape": "mat1 and mat2", "raises": "boom: deliberately failing", "nan": "not finite"}[tail] in message
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_empirical_account_says_what_was_left_and_why():
    torch.manual_seed(0)
    model = nn.ModuleDict({"emb": nn.Embedding(10, 8), "fc": nn.Linear(8, 8), "unused": nn.Linear(8, 8),
                           "lstm": nn.LSTM(8, 8, batch_first=True), "norm": nn.LayerNorm(8)})
    unused_before = model["unused"].weight.clone()

    def forward(ids):
        h = model["norm"](model["emb"](ids))
        return model["fc"](model["lstm"](h)[0])
    model.forward = forward
    entries, info = empirical_init(model, torch.randint(0, 10, (4, 5), generator=_gen(7)), generator=0)
    by_name = {e.name: e for e in entries}
    assert set(by_name) == {n for n, _ in model.named_parameters()}
    assert by_name["fc.weight"].action == "touched" and abs(by_name["fc.weight"].measured_std - 1) < TOL / 2
    assert by_name["fc.bias"].action == "touched" and by_name["fc.bias"].reason == "zeros"
    assert "not called" in by_name["unused.weight"].reason and torch.equal(model["unused"].weight, unused_before)
    assert by_name["lstm.weight_ih_l0"].action == "left" and "fused kernel" in by_name["lstm.weight_ih_l0"].reason
    assert by_name["emb.weight"].action == "left" and "embedding" in by_name["emb.weight"].reason
    assert by_name["norm.weight"].kind == "norm" and by_name["norm.weight"].action == "left"
    assert list(info["modules"]) == ["fc"] and info["converged"]


@pytest.mark.slow  # measured 8-19 s on 2 busy cores
def test_gpt2_tied_head_is_set_once_for_the_logits():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, n_positions=32,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    ids = torch.randint(0, 100, (8, 16), generator=_gen(8))
    entries, info = empirical_init(model, {"input_ids": ids}, generator=0)
    by_name = {e.name: e for e in entries}
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert by_name["lm_head.weight"].action == "left" and "tied to transformer.wte.weight" in by_name["lm_head.weight"].reason
    wte = by_name["transformer.wte.weight"]
    assert wte.action == "touched" and "lm_head" in wte.reason and wte.module == "lm_head"
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert abs(float(logits.var()) - 1.0) < TOL
    assert info["modules"]["lm_head"]["iterations"] >= 1 and info["converged"]
    # pre-LN blocks: 2 x 2 branch additions + the embeddings' sum, no normalization on the stream
    assert info["residual_additions"] == 5
    proj = by_name["transformer.h.1.mlp.c_proj.weight"]
    assert proj.predicted_std == pytest.approx(5**-0.5) and proj.measured_std == pytest.approx(5**-0.5, rel=TOL)


def test_bad_settings_are_one_line_errors():
    from initlab import ValidationError

    model = nn.Sequential(nn.Linear(3, 3))
    with pytest.raises(ValidationError, match="tol"):
        empirical_init(model, torch.randn(4, 3), tol=0)
    with pytest.raises(ValidationError, match="^example: the empirical mode measures on data"):
        empirical_init(model, None)
    with pytest.raises(ValidationError, match="must be a torch.nn.Module"):
        empirical_init("resnet", torch.randn(4, 3))
    with pytest.raises(ValidationError, match="no Linear, Conv or attention"):
        lsuv_model(nn.Sequential(nn.ReLU()), torch.randn(4, 3))


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(32, 32), nn.Linear(32, 32)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))


@pytest.mark.slow  # measured 8-19 s on 2 busy cores
def test_residual_branches_end_at_one_over_sqrt_r_so_the_stream_stays_near_target():
    torch.manual_seed(0)
    x = torch.randn(256, 32, generator=_gen(9))
    model = nn.Sequential(*[_Residual() for _ in range(16)])
    entries, info = empirical_init(model, x, generator=0)
    assert info["residual_additions"] == 16 and info["warnings"] == []
    stream = []
    hooks = [b.register_forward_hook(lambda m, i, o: stream.append(float(o.std()))) for b in model]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert stream[-1] / float(x.std()) < 1.6  # sqrt(1 + 16 / 16) = 1.41
    fc2 = {e.name: e for e in entries}["15.fc2.weight"]
    assert "ends a residual branch" in fc2.reason and fc2.predicted_std == pytest.approx(0.25)
    assert fc2.measured_std == pytest.approx(0.25, rel=TOL)


@pytest.mark.slow  # measured 8-19 s on 2 busy cores
def test_plain_lsuv_on_a_residual_stream_says_what_it_cannot_fix():
    torch.manual_seed(0)
    x = torch.randn(256, 32, generator=_gen(9))
    _, info = empirical_init(nn.Sequential(*[_Residual() for _ in range(16)]), x, generator=0, residual=False)
    # each block adds a unit-variance branch: block 16's input has variance ~16, std ~4
    ratio = info["modules"]["15.fc1"]["input_std"] / info["modules"]["0.fc1"]["input_std"]
    assert 3.0 < ratio < 5.0
    assert len(info["warnings"]) == 1 and "from 0.fc1 to 15.fc1" in info["warnings"][0]
    plain = nn.Sequential(*[m for _ in range(16) for m in (nn.Linear(32, 32), nn.ReLU())])
    assert empirical_init(plain, x, generator=0)[1]["warnings"] == []


def test_input_drift_compares_one_role_across_blocks_never_two_roles():
    """Blocks that are Sequential(Linear, ReLU, Linear): ``blocks.i.0`` reads the stream, ``blocks.i.2``
    a ReLU output; the drift sentence must name two layers of one role (same inner index)."""
    from initlab.initializers.lsuv import LSUVResult, LSUVUnit

    def unit(name: str, input_std: float) -> LSUVUnit:
        lin = nn.Linear(2, 2)
        return LSUVUnit(name, name, lin, lin.weight, lin.weight, None, input_std=input_std)

    units = []
    for i in range(8):  # the stream shrinks 0.5x per block; each block's second layer reads a steady 1.0
        units += [unit(f"blocks.{i}.0", 0.5 ** i), unit(f"blocks.{i}.2", 1.0)]
    result = LSUVResult.__new__(LSUVResult)
    result.units = units
    ratio, first, last = result.input_drift()
    assert (first, last) == ("blocks.0.0", "blocks.7.0") and ratio == pytest.approx(0.5 ** 7)
    # a plain Sequential chain keeps its single role: 1, 3, 5
    result.units = [unit(str(k), 1.0 + k) for k in (1, 3, 5)]
    assert result.input_drift()[1:] == ("1", "5")
