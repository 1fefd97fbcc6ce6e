"""StackedMLP.initialized: each model drawn as apply_init draws the same MLP."""

from __future__ import annotations

import torch

from initlab.initializers import apply_init
from initlab.models import MLP
from initlab.models.stacked import StackedMLP


def test_data_dependent_model_after_a_drawn_one():
    # A drawn model before a data-dependent one once crashed: the layer loop rebound the ``bias`` argument to
    # a bias tensor, so the lsuv branch's ``if bias`` asked a (2, 8) tensor for its truth value.
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    net = StackedMLP.initialized([4, 8, 1], "tanh", ["he_normal", "lsuv"], [0, 1], ["zeros", "zeros"], init_data=x)
    for i, (scheme, seed) in enumerate([("he_normal", 0), ("lsuv", 1)]):
        expected = apply_init(MLP([4, 8, 1], "tanh", "sigmoid"), scheme, "zeros", generator=seed, data=x)
        got = net.to_model(i)
        for a, b in zip(got.linears, expected.linears, strict=True):
            torch.testing.assert_close(a.weight, b.weight)
            torch.testing.assert_close(a.bias, b.bias)


# --------------------------------------------------------------------------- residual connections (#141)
import pytest  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from initlab.models.mlp import residual_layers  # noqa: E402
from initlab.models.stacked import ForwardCache  # noqa: E402


def test_which_layers_add_their_input():
    assert residual_layers([2, 8, 8, 4, 4, 1], True) == [False, True, False, True]
    assert residual_layers([2, 2, 2, 1], True) == [False, True]  # the first layer stays plain, even 2 -> 2
    assert residual_layers([2, 8, 8, 1], False) == [False, False]


def test_mlp_default_is_unchanged_and_residual_adds_the_input():
    plain = MLP([2, 5, 5, 1], "tanh", generator=3)
    res = MLP([2, 5, 5, 1], "tanh", generator=3, residual=True)
    assert list(plain.state_dict()) == list(res.state_dict()) == [
        "hidden1.weight", "hidden1.bias", "hidden2.weight", "hidden2.bias", "output.weight", "output.bias"]
    x = torch.randn(9, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h1 = torch.tanh(x @ plain.hidden1.weight.T + plain.hidden1.bias)
        z2 = h1 @ plain.hidden2.weight.T + plain.hidden2.bias
        torch.testing.assert_close(plain(x), torch.tanh(z2) @ plain.output.weight.T + plain.output.bias)
        torch.testing.assert_close(res(x), (h1 + torch.tanh(z2)) @ res.output.weight.T + res.output.bias)
        torch.testing.assert_close(res.hidden(x)[1], h1 + torch.tanh(z2))
        torch.testing.assert_close(res.preactivations(x)[1], z2)


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu", "selu", "linear"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-inputs", "per-model-inputs"])
def test_residual_backward_equals_autograd_on_the_single_model(activation, shared):
    """The hand-written backward with skips against autograd on ``to_model(i)`` (an ordinary module)."""
    gen = torch.Generator().manual_seed(0)
    sizes = [3, 6, 6, 4, 4, 4, 2]  # skips at hidden layers 2, 4 and 5 (two in a row)
    net = StackedMLP.initialized(sizes, activation, ["glorot_normal", "he_normal", "orthogonal"], [0, 1, 2],
                                 ["normal"] * 3, output="softmax", residual=True)
    assert net.skips == [False, True, False, True, True]
    m, b = net.m, 11
    x = torch.randn(b, 3, generator=gen) if shared else torch.randn(m, b, 3, generator=gen)
    y = torch.randint(0, 2, (b,), generator=gen)
    cache = ForwardCache([], [])
    logits = net.forward(x, cache)  # (M, 2, B)
    grad_logits = (torch.softmax(logits, 1) - F.one_hot(y, 2).T.float()) / b  # d mean CE / d logits
    grad = torch.empty_like(net.flat)
    net.backward(cache, logits, grad_logits, grad)
    grad_w, grad_b = net.grad_views(grad)
    for i in range(m):
        model = net.to_model(i)
        assert model.residual
        out = model(x if shared else x[i])
        torch.testing.assert_close(out.detach(), logits[i].T, rtol=1e-5, atol=1e-6)
        F.cross_entropy(out, y).backward()
        for layer, gw, gb in zip(model.linears, grad_w, grad_b, strict=True):
            torch.testing.assert_close(gw[i], layer.weight.grad, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(gb[i], layer.bias.grad, rtol=1e-4, atol=1e-6)


def test_residual_flag_survives_select_and_from_models():
    net = StackedMLP.initialized([2, 4, 4, 1], "relu", ["he_normal"] * 3, [0, 1, 2], ["zeros"] * 3, residual=True)
    assert net.select(torch.tensor([2, 0])).residual
    back = StackedMLP.from_models(net.to_models())
    assert back.residual and torch.equal(back.flat, net.flat)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(net.hidden(x)[1][1].T, net.to_model(1).hidden(x)[1])
