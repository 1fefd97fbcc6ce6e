"""initializers.replay.filler: one recorded initializer call replayed per tensor, bit for bit."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from initlab import ValidationError
from initlab.initializers import get, names
from initlab.initializers.replay import filler

SHAPES = [((10, 3), None), ((7,), (3, 7)), ((4, 3, 2, 2), None)]


@pytest.mark.parametrize("name", [n for n in names() if n != "lsuv"])
def test_filler_draws_what_the_initializer_draws(name):
    init = get(name)
    for shape, fans in SHAPES:
        try:
            fill = filler(init, shape, fans)
        except ValidationError:  # the scheme refuses the shape: so does a direct call
            with pytest.raises(ValidationError):
                init(torch.empty(shape), torch.Generator().manual_seed(0), fans=fans)
            continue
        for seed in (0, 5, 123):
            got, want = torch.empty(shape), torch.empty(shape)
            fill(got, torch.Generator().manual_seed(seed))
            init(want, torch.Generator().manual_seed(seed), fans=fans)
            assert torch.equal(got, want) or (got.isnan().all() and want.isnan().all()), (name, shape, seed)


def test_simple_schemes_are_replayed_and_the_others_called():
    assert filler(get("glorot_uniform"), (10, 2)).__name__ == "replay_one"  # one uniform_ draw
    assert filler(get("lecun_normal"), (10, 2)).__name__ == "replay"  # truncated: uniform_, erfinv_, mul_, add_, clamp_
    assert filler(get({"name": "uniform", "low": -1, "high": 2}), (5,)).__name__ == "replay_one"
    assert filler(get("orthogonal"), (10, 2)).__name__ == "call"  # a QR decomposition on other tensors
    assert filler(get("sparse"), (10, 2)).__name__ == "call"


def test_one_generator_continues_across_fills():
    # weight then bias from one generator, as apply_init draws them
    w_fill, b_fill = filler(get("he_uniform"), (6, 4)), filler(get("uniform"), (6,), (4, 6))
    gen, ref = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    w, b = w_fill(torch.empty(6, 4), gen), b_fill(torch.empty(6), gen)
    assert torch.equal(w, get("he_uniform")(torch.empty(6, 4), ref))
    assert torch.equal(b, get("uniform")(torch.empty(6), ref, fans=(4, 6)))


def test_replay_fills_a_parameter_without_autograd():
    p = torch.nn.Parameter(torch.empty(5, 3))
    filler(get("glorot_normal"), (5, 3))(p, torch.Generator().manual_seed(1))
    assert p.grad_fn is None and p.requires_grad
    assert torch.equal(p.detach(), get("glorot_normal")(torch.empty(5, 3), torch.Generator().manual_seed(1)))


def test_recording_does_not_import_torch_dynamo():
    # a TorchDispatchMode would (2 s of imports); the recorder is a TorchFunctionMode
    code = ("import sys, torch; from initlab.initializers import get; from initlab.initializers.replay import filler; "
            "f = filler(get('glorot_uniform'), (3, 2)); assert f.__name__ == 'replay_one'; "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
