"""The batched trainer's fused C kernel (initlab.training.fused) against its torch path.

Both compute the same formulas; they differ in float rounding only (sums in another order,
Cephes exp/log/tanh), so in the ordered phase (chi_1 < 1, where rounding dies out) their
histories agree to RTOL. A net's numbers from the kernel do not depend on the thread count or the
chunking (bit for bit): nets are independent lanes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from initlab import ValidationError, datasets
from initlab.training import BatchedTrainer, fused

RTOL = 1e-5

pytestmark = pytest.mark.skipif(fused.kernel() is None, reason="no C compiler: the fused kernel is not built")


@pytest.fixture(scope="module")
def moons():
    ds = datasets.load("moons", 120, 0.2, 0)
    return datasets.validation_split(ds.X, ds.y, 0.25)


def _vs(scale, distribution="normal"):
    return {"name": "variance_scaling", "scale": scale, "distribution": distribution}


def _both(*args, data, **kw):
    runs = {}
    for flag in (True, False):
        bt = BatchedTrainer(*args, fused=flag, **kw).fit(*data)
        assert bt.path_ == ("fused" if flag else "torch")
        runs[flag] = bt
    return runs[True], runs[False]


def _assert_same(a, b, rtol=RTOL, atol=1e-7):
    for key in b.history_:
        np.testing.assert_allclose(a.history_[key], b.history_[key], rtol=rtol, atol=atol, err_msg=key)
    # weights to 1e-5: Adam divides by sqrt(v), so a weight whose gradient hovers at zero moves by
    # lr * (rounding of g) / |g| (one of 1221 weights of the 2-33-1 case: 1.2e-6)
    for wa, wb in zip(a.weights(), b.weights(), strict=True):
        torch.testing.assert_close(wa, wb, rtol=1e-4, atol=1e-5)


# (sizes, activation, optimizer kwargs, inits in the ordered phase of that activation)
CASES = [
    ([2, 10, 1], "relu", {"optimizer": "adam"}, [{"name": "he_normal", "negative_slope": 0.5}, _vs(1.5, "uniform")]),
    ([2, 9, 7, 1], "leaky_relu", {"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9}, [_vs(1.2), _vs(0.9)]),
    ([2, 8, 6, 1], "tanh", {"optimizer": "rmsprop", "momentum": 0.5}, [_vs(0.8), _vs(0.5, "uniform")]),
    ([2, 5, 5, 5, 1], "sigmoid", {"optimizer": "rmsprop"}, ["he_normal", "glorot_uniform"]),
    ([3, 12, 12, 1], "linear", {"optimizer": "sgd", "learning_rate": 0.05}, [_vs(0.6), _vs(0.4, "uniform")]),
    ([2, 33, 1], "tanh", {"optimizer": "adam", "learning_rate": 0.01}, [_vs(0.7), _vs(0.3, "uniform")]),
    ([2, 6, 6, 1], "elu", {"optimizer": "adam", "learning_rate": 0.01}, [_vs(0.8), _vs(0.5, "uniform")]),
    ([2, 6, 4, 1], "selu", {"optimizer": "rmsprop", "momentum": 0.9}, [_vs(0.3), _vs(0.1)]),  # SELU: critical at 0.32
    ([2, 7, 5, 1], "gelu", {"optimizer": "adam", "learning_rate": 0.01}, ["he_normal", "glorot_uniform"]),
    ([2, 7, 5, 1], "silu", {"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9}, ["he_normal", _vs(1.5)]),
]


@pytest.mark.parametrize("sizes, activation, opt, inits", CASES)
def test_fused_matches_torch_path(moons, sizes, activation, opt, inits):
    # a third feature where asked; a column slice: non-contiguous arrays (a bug once: rows read densely)
    X = np.hstack([moons[0], moons[0][:, :1] ** 2])[:, :sizes[0]]
    Xv = np.hstack([moons[2], moons[2][:, :1] ** 2])[:, :sizes[0]]
    m = 37  # two full blocks of 16 nets and a partial one
    inits_m = [inits[i % len(inits)] for i in range(m)]
    order = [i % 3 for i in range(m)]  # shared and distinct orders mixed within a block
    a, b = _both(sizes, activation, inits_m, list(range(m)), order_seeds=order, epochs=15, data=(X, moons[1], Xv, moons[3]),
                 **opt)
    _assert_same(a, b)


def test_softmax_cross_entropy_over_classes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5) + (X[:, 2] > 1.0)  # four classes
    leaky_he = {"name": "he_uniform", "negative_slope": 0.5}  # ordered: chi_1 = 0.8
    m = 20
    a, b = _both([3, 8, 4], "relu", [leaky_he, "glorot_normal"] * (m // 2), list(range(m)), order_seeds=[i % 2 for i in range(m)],
                 output="softmax", epochs=15, data=(X[:70], y[:70], X[70:], y[70:]))
    _assert_same(a, b)
    correct = a.history_["accuracy"] * 70  # a whole number of the 70 training rows each epoch
    np.testing.assert_allclose(correct, np.round(correct), atol=1e-6)


def test_mse_loss_bias_free_full_batch_and_per_model_learning_rates(moons):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    Y = (X @ rng.normal(size=(4, 3)) * 0.5).astype(np.float32)  # three linear targets
    lrs = [0.01 * (1 + i % 4) for i in range(20)]
    a, b = _both([4, 8, 3], "linear", [_vs(0.5)] * 20, list(range(20)), optimizer="sgd", learning_rate=lrs, loss="mse",
                 output="linear", bias=False, batch_size=None, epochs=30, data=(X, Y, X[:10], Y[:10]))
    _assert_same(a, b)
    assert np.isnan(a.history_["accuracy"]).all()
    assert all(float(bias.abs().max()) == 0.0 for bias in a.stacks_[0].biases)


def test_bits_do_not_depend_on_threads_or_chunks(moons):
    args = ([2, 10, 1], "relu", ["glorot_uniform"] * 50, list(range(50)))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = BatchedTrainer(*args, order_seeds=[i % 4 for i in range(50)], epochs=10, fused=True).fit(*moons)
        torch.set_num_threads(2)
        two = BatchedTrainer(*args, order_seeds=[i % 4 for i in range(50)], epochs=10, fused=True, chunk_size=7).fit(*moons)
    finally:
        torch.set_num_threads(threads)
    for key in one.history_:
        np.testing.assert_array_equal(one.history_[key], two.history_[key])
    for wa, wb in zip(one.weights(), two.weights(), strict=True):
        assert torch.equal(wa, wb)


def test_extreme_logits_give_torch_losses():
    # One full-batch step of a linear net whose logits span +-1e4: the first epoch's loss is the
    # loss of the initial weights, computed by the kernel's BCE (Cephes exp/log1p) and by torch's.
    X = np.linspace(-1, 1, 40, dtype=np.float32)[:, None] * np.array([[1.0, 0.5]], np.float32)
    y = (np.arange(40) % 2).astype(np.float32)
    scales = [{"name": "constant", "value": v} for v in (1e-6, 0.01, 1.0, 30.0, 100.0, 1e4)]
    a, b = _both([2, 3, 1], "linear", scales, list(range(6)), batch_size=None, epochs=1, data=(X, y))
    np.testing.assert_allclose(a.history_["loss"], b.history_["loss"], rtol=2e-6)
    assert np.isfinite(a.history_["loss"]).all() and a.history_["loss"][-1, 0] > 1e3


@pytest.mark.parametrize("activation", ["gelu", "silu", "elu", "selu", "tanh", "sigmoid"])
def test_activations_over_a_wide_range_of_pre_activations(activation):
    # One full-batch step: the first epoch's loss is the initial weights' loss, so the kernel's
    # activation (Cephes exp, A&S erfc for gelu's Phi) meets torch's on pre-activations in [-12, 12].
    X = np.linspace(-1, 1, 64, dtype=np.float32)[:, None] * np.array([[1.0, -0.5]], np.float32)
    y = (np.arange(64) % 2).astype(np.float32)
    inits = [{"name": "constant", "value": v} for v in (0.01, 0.3, 1.0, 3.0, 8.0)]
    a, b = _both([2, 4, 1], activation, inits, list(range(5)), batch_size=None, epochs=2, optimizer="sgd",
                 learning_rate=0.01, bias_inits="ones", data=(X, y))
    np.testing.assert_allclose(a.history_["loss"], b.history_["loss"], rtol=1e-5)
    for wa, wb in zip(a.weights(), b.weights(), strict=True):  # after one step: the gradients agree too
        torch.testing.assert_close(wa, wb, rtol=1e-5, atol=1e-6)


def test_divergence_is_frozen_as_on_the_torch_path(moons):
    inits = ["he_normal", {"name": "constant", "value": 1e20}, "glorot_uniform"] * 7
    a, b = _both([2, 10, 1], "relu", inits, list(range(21)), epochs=6, data=moons)
    np.testing.assert_array_equal(a.diverged_epoch_, b.diverged_epoch_)
    assert set(a.diverged_epoch_[1::3]) == {0}
    for i in (1, 4):  # frozen at the end of epoch 0 on both paths
        for pa, pb in zip(a.to_model(i).parameters(), b.to_model(i).parameters(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_unsupported_stacks_take_the_torch_path():
    assert fused.unsupported_reason([2, 4, 1], "sin", "adam", torch.device("cpu")) == "activation 'sin'"
    assert fused.unsupported_reason([2, 4, 1], "relu", "adam", torch.device("meta")) == "device meta"
    with pytest.raises(ValidationError, match="fused must be None \\(automatic\\), True or False, got 'yes'"):
        BatchedTrainer([2, 4, 1], "relu", ["he_normal"], fused="yes")


@pytest.mark.parametrize("activation, opt", [("relu", {"optimizer": "adam"}), ("tanh", {"optimizer": "sgd", "learning_rate": 0.05}),
                                             ("gelu", {"optimizer": "rmsprop", "momentum": 0.5})])
def test_residual_connections_match_the_torch_path(moons, activation, opt):
    # 2-8-8-8-6-1: the second and third hidden layers add their input, the first and the 8 -> 6 do not;
    # small weights (sigma_w2 0.3): a residual layer's gain is 1 + chi_1, so rounding grows slowly
    sizes = [2, 8, 8, 8, 6, 1]
    a, b = _both(sizes, activation, [_vs(0.3), _vs(0.2, "uniform")] * 9, list(range(18)), residual=True, epochs=12,
                 order_seeds=[i % 2 for i in range(18)], data=moons, **opt)
    _assert_same(a, b)
    plain = BatchedTrainer(sizes, activation, [_vs(0.3), _vs(0.2, "uniform")] * 9, list(range(18)), epochs=12,
                           order_seeds=[i % 2 for i in range(18)], **opt).fit(*moons)
    assert np.abs(plain.history_["loss"] - a.history_["loss"]).max() > 1e-3  # the skips are really there


def test_no_compiler_falls_back_with_one_warning(moons, monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "/bin/false")
    monkeypatch.setenv("INITLAB_CACHE_DIR", str(tmp_path))
    fused._load.cache_clear()
    fused._warn_once.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="fused CPU kernel is off \\(compiling the fused kernel failed"):
            bt = BatchedTrainer([2, 4, 1], "relu", ["he_normal"] * 2, [0, 1], epochs=2).fit(*moons)
        assert bt.path_ == "torch"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once, not on every fit
            BatchedTrainer([2, 4, 1], "relu", ["he_normal"] * 2, [0, 1], epochs=2).fit(*moons)
        with pytest.raises(ValidationError, match="fused=True cannot train this stack: the kernel is not available"):
            BatchedTrainer([2, 4, 1], "relu", ["he_normal"], fused=True, epochs=1).fit(*moons)
    finally:
        fused._load.cache_clear()
        fused._warn_once.cache_clear()


def test_block_layout_round_trip():
    sizes, m = [3, 5, 2], 21
    per_net = 3 * 5 + 5 + 5 * 2 + 2
    flat = torch.arange(m * per_net, dtype=torch.float32)
    blocks = fused.to_blocks(flat, sizes, m)
    assert blocks.shape == (2, per_net, 16)
    assert torch.equal(fused.from_blocks(blocks, sizes, m), flat)
    # net j's first weight is flat[j * 15] (the (M, 5, 3) block); in the blocks at [j // 16, 0, j % 16]
    assert blocks[1, 0, 4] == flat[20 * 15] and blocks[1, 0, 5] == 0  # lanes past m are zero


def test_auto_choice_keeps_a_few_wide_nets_on_the_torch_path(moons):
    wide = [2] + [48] * 21 + [1]
    assert not fused.worth_it(wide, 2, 90, 32) and fused.worth_it(wide, 16, 90, 32)
    assert all(fused.worth_it([2, 10, 1], m, 90, 32) for m in (1, 2, 16, 5000))  # the classic net: always
    auto = BatchedTrainer(wide, "relu", ["he_normal"] * 2, [0, 1], epochs=1).fit(*moons)
    forced = BatchedTrainer(wide, "relu", ["he_normal"] * 2, [0, 1], epochs=1, fused=True).fit(*moons)
    assert (auto.path_, forced.path_) == ("torch", "fused")
    np.testing.assert_allclose(auto.history_["loss"], forced.history_["loss"], rtol=1e-4)
