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
