"""apply_init's account: every parameter touched or left with its reason; tied parameters drawn once;
attention in-projections, LSTM gates and GPT-2's Conv1D drawn with their own fans; critical takes
the model's activation or refuses."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab import ValidationError, apply_init
from initlab.initializers import Account
from initlab.models import MLP


def _gpt2():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, n_positions=32,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config)


def test_the_default_return_is_still_the_model_and_the_draw_unchanged():
    a = apply_init(MLP([3, 5, 2], "relu", generator=0), "he_normal", generator=1)
    assert isinstance(a, MLP)
    b = MLP([3, 5, 2], "relu", generator=0)
    account = apply_init(b, "he_normal", generator=1, account=True)
    assert isinstance(account, Account) and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=False))
    assert [e.name for e in account] == ["hidden1.weight", "hidden1.bias", "output.weight", "output.bias"]
    assert repr(account) == "Account(touched=4, left=0)"


def test_gpt2_lm_head_stays_tied_and_the_embedding_is_not_redrawn():
    model = _gpt2()
    wte = model.transformer.wte.weight.detach().clone()
    account = apply_init(model, "he_normal", generator=0, account=True)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert torch.equal(model.transformer.wte.weight, wte)  # std 0.02 as GPT-2 drew it, not 0.125
    head = account["lm_head.weight"]
    assert head.action == "left" and head.reason.startswith("tied to transformer.wte.weight")
    assert account["transformer.wte.weight"].action == "left" and account["transformer.wte.weight"].kind == "embedding"
    names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    assert sorted(e.name for e in account) == sorted(names)  # every name, the tied one twice
    # GPT-2's Conv1D stores (in, out) = (64, 192): He's std is sqrt(2 / fan_in) with fan_in = 64
    c_attn = account["transformer.h.0.attn.c_attn.weight"]
    assert c_attn.action == "touched" and c_attn.std == pytest.approx(math.sqrt(2 / 64), rel=0.05)
    assert repr(account).startswith("Account(touched=16, left=13: transformer.wte.weight (an embedding")


def test_two_drawn_layers_sharing_a_weight_are_drawn_once():
    a, b = nn.Linear(6, 6), nn.Linear(6, 6)
    b.weight = a.weight
    account = apply_init(nn.Sequential(a, nn.Tanh(), b), "glorot_normal", generator=0, account=True)
    assert account["0.weight"].action == "touched"
    assert account["2.weight"].action == "left" and account["2.weight"].reason.startswith("tied to 0.weight")


def test_attention_in_projection_is_drawn_per_matrix_with_its_own_fans():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(256, 4)
    account = apply_init(mha, "he_normal", generator=0, account=True)
    e = 256
    for i in range(3):  # q, k, v each (E, E): fan_in = E, not 3E's row count
        block = mha.in_proj_weight.detach()[i * e:(i + 1) * e]
        assert float(block.detach().std()) == pytest.approx(math.sqrt(2 / e), rel=0.03)
    assert account["in_proj_weight"].kind == "attention" and account["in_proj_weight"].action == "touched"
    assert account["in_proj_bias"].action == "touched" and float(mha.in_proj_bias.detach().abs().max()) == 0.0


def test_lstm_weights_are_drawn_per_gate():
    torch.manual_seed(0)
    lstm = nn.LSTM(100, 200)
    account = apply_init(lstm, "glorot_uniform", bias="ones", generator=0, account=True)
    for gate in range(4):  # each gate (200, 100): glorot std sqrt(2 / (100 + 200)); the stacked (800, 100) would give sqrt(2/900)
        block = lstm.weight_ih_l0[gate * 200:(gate + 1) * 200]
        assert float(block.detach().std()) == pytest.approx(math.sqrt(2 / 300), rel=0.03)
    assert float(lstm.weight_hh_l0.detach().std()) == pytest.approx(math.sqrt(2 / 400), rel=0.03)
    assert {e.action for e in account} == {"touched"} and bool((lstm.bias_ih_l0 == 1).all())


def test_left_parameters_carry_a_reason():
    model = nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    account = apply_init(model, "he_normal", bias=None, generator=0, account=True)
    assert {e.name: e.action for e in account} == {
        "0.weight": "left", "1.weight": "left", "1.bias": "left", "2.weight": "touched", "2.bias": "left"}
    assert all(e.reason for e in account.left())
    assert "bias=None" in account["2.bias"].reason and "embedding" in account["0.weight"].reason


def test_critical_on_a_relu_net_is_relus_critical_point():
    model = apply_init(MLP([400, 400, 400, 1], "relu", generator=0), "critical", generator=0)
    assert float(model.hidden2.weight.detach().std()) == pytest.approx(math.sqrt(2.0 / 400), rel=0.02)  # He, not tanh's 1


def test_critical_refuses_what_it_cannot_know():
    with pytest.raises(ValidationError, match="activation 'tanh' given, but the model applies relu") as err:
        apply_init(MLP([4, 8, 1], "relu"), {"name": "critical", "activation": "tanh"})
    assert "\n" not in str(err.value)
    with pytest.raises(ValidationError, match="no activation module"):
        apply_init(nn.Sequential(nn.Linear(3, 3)), "critical")
    with pytest.raises(ValidationError, match="several activations"):
        apply_init(nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3), nn.Tanh()), "critical")
    net = nn.Sequential(nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 300), nn.Tanh())  # the user says which
    apply_init(net, {"name": "critical", "activation": "relu"}, generator=0)
    assert float(net[2].weight.detach().std()) == pytest.approx(math.sqrt(2 / 300), rel=0.03)


def test_lsuv_without_data_touches_nothing():
    model = MLP([3, 4, 1], "relu", generator=0)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValidationError, match="data-dependent"):
        apply_init(model, "lsuv")
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=False))


def test_lsuv_account_holds_each_layers_measured_output_std():
    model = MLP([8, 64, 64, 3], "tanh", generator=0)
    x = torch.randn(512, 8, generator=torch.Generator().manual_seed(0))
    account = apply_init(model, "lsuv", data=x, generator=0, account=True)
    for name, layer in (("hidden1", model.hidden1), ("hidden2", model.hidden2), ("output", model.output)):
        entry = account[f"{name}.weight"]
        with torch.no_grad():
            out = layer(x if name == "hidden1" else torch.tanh(model.hidden1(x)) if name == "hidden2"
                        else torch.tanh(model.hidden2(torch.tanh(model.hidden1(x)))))
        assert entry.measured_std == pytest.approx(float(out.std()), rel=1e-4)
        assert abs(entry.measured_std - 1.0) < 0.05 and entry.std == pytest.approx(float(layer.weight.detach().std()))


def test_a_scheme_refusing_a_layer_leaves_the_whole_model_as_it_was():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Conv1d(4, 4, 3))  # sparse is 2-D only
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValidationError, match="sparse"):
        apply_init(model, "sparse", generator=0)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=False))
