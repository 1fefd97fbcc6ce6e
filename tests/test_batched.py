"""The batched trainer must match M single-model Trainer runs number for number, in the ordered phase.

In the ordered phase (every layer's chi_1 < 1) float rounding dies out, and batched and single
runs agree within RTOL. From the critical line on (chi_1 >= 1; ReLU with He init is exactly
critical) rounding can be amplified layer by layer and epoch by epoch, as between two single runs
whose weights differ by one ulp: tanh, depth 10, SGD 0.05, 60 epochs (bench/batched_agreement_bench.py):
sigma_w2 = 0.5 (ordered) 7e-6; 1 (critical) 58 %; 4 (chaotic) 340 %. There the two agree in
distribution only, and these tests do not go there (``test_cases_are_in_the_ordered_phase``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from initlab import ValidationError, apply_init, datasets
from initlab.models import MLP
from initlab.models.stacked import StackedMLP
from initlab.theory import MeanField, effective_sigma_w2
from initlab.training import BatchedTrainer, Trainer

RTOL = 1e-5


@pytest.fixture(autouse=True, params=["fused", "torch"])
def path(request, monkeypatch):
    """Every test on both of the batched trainer's CPU paths: the fused C kernel and the torch ops."""
    monkeypatch.setenv("INITLAB_FUSED", "1" if request.param == "fused" else "0")
    return request.param


@pytest.fixture(scope="module")
def moons():
    ds = datasets.load("moons", 120, 0.2, 0)
    return datasets.validation_split(ds.X, ds.y, 0.25)


def _single(sizes, activation, init, init_seed, data_seed, data, output="sigmoid", **kw):
    Xt, yt, Xv, yv = data
    model = apply_init(MLP(sizes, activation, output), init, "zeros", generator=init_seed)
    trainer = Trainer(model, seed=data_seed, **kw).fit(Xt, yt, Xv, yv)
    return trainer, model


def _assert_history_close(batched, i, single):
    for key, values in single.history_.items():
        got = batched.history_[key][i, : len(values)]
        np.testing.assert_allclose(got, values, rtol=RTOL, atol=1e-7, err_msg=f"model {i} {key}")


def _max_chi_1(sizes, activation, init):
    """The largest chi_1 over the hidden layers (biases zero), each with its own sigma_w2."""
    return max(MeanField(activation, effective_sigma_w2(init, fan_in, fan_out), 0.0).chi_1
               for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1], strict=False))


def _ordered(sizes, activation, init):
    return _max_chi_1(sizes, activation, init) < 1 - 1e-3


def _vs(scale, distribution="normal"):
    """Weights of variance scale / fan_in: sigma_w2 = scale."""
    return {"name": "variance_scaling", "scale": scale, "distribution": distribution}


_LEAKY_HE = {"name": "he_normal", "negative_slope": 0.5}  # sigma_w2 = 1.6: chi_1 = 0.8 for ReLU
CASES = [
    # sizes, activation, optimizer kwargs, six inits in the ordered phase for the activation
    ([2, 10, 1], "relu", {"optimizer": "adam"},
     [_LEAKY_HE, "glorot_uniform", "zeros", "orthogonal", "lecun_normal", _vs(1.5, "uniform")]),
    ([2, 8, 6, 1], "tanh", {"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9},
     [_vs(0.8), {"name": "truncated_normal", "std": 0.3}, "zeros", {"name": "orthogonal", "gain": 0.8}, _vs(0.5),
      _vs(0.6, "uniform")]),
    ([2, 5, 5, 5, 1], "sigmoid", {"optimizer": "rmsprop"},
     ["he_normal", "glorot_uniform", "zeros", "orthogonal", "lecun_normal", "he_normal"]),
    ([2, 7, 1], "gelu", {"optimizer": "adam", "learning_rate": 0.01},
     ["he_normal", "glorot_uniform", "zeros", "orthogonal", "lecun_normal", "he_normal"]),
    ([2, 6, 4, 1], "selu", {"optimizer": "rmsprop", "momentum": 0.9},
     # SELU's critical sigma_w2 is 0.32 (sigma_b2 = 0): LeCun's 1 is chaotic by chi_1
     [_vs(0.3), {"name": "normal", "std": 0.2}, "zeros", _vs(0.1), _vs(0.25, "uniform"), _vs(0.3)]),
]


@pytest.mark.parametrize("sizes, activation, opt, inits", CASES)
def test_cases_are_in_the_ordered_phase(sizes, activation, opt, inits):
    for init in inits:
        assert _ordered(sizes, activation, init), (activation, init, _max_chi_1(sizes, activation, init))


@pytest.mark.parametrize("sizes, activation, opt, inits", CASES)
def test_matches_single_trainer_runs(moons, sizes, activation, opt, inits):
    init_seeds = [0, 1, 2, 3, 4, 5]
    order_seeds = [0, 0, 1, 0, 2, 1]  # shared and distinct minibatch orders in one batch
    bt = BatchedTrainer(sizes, activation, inits, init_seeds, order_seeds=order_seeds, epochs=25, chunk_size=4, **opt)
    bt.fit(*moons)
    assert bt.history_["loss"].shape == (6, 25)
    for i in range(6):
        single, model = _single(sizes, activation, inits[i], init_seeds[i], order_seeds[i], moons, epochs=25, **opt)
        _assert_history_close(bt, i, single)
        for got, want in zip(bt.to_model(i).parameters(), model.parameters(), strict=False):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert (bt.diverged_epoch_ == -1).all()


def test_softmax_output_matches_single_trainer():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)  # three classes
    data = (X[:70], y[:70], X[70:], y[70:])
    leaky_he = {"name": "he_uniform", "negative_slope": 0.5}  # ordered: chi_1 = 0.8 (He's 1 is critical)
    bt = BatchedTrainer([3, 8, 3], "relu", [leaky_he, "glorot_normal"], [4, 5], order_seeds=[0, 1],
                        output="softmax", epochs=15).fit(*data)
    for i, (init, seed) in enumerate([(leaky_he, 4), ("glorot_normal", 5)]):
        single, model = _single([3, 8, 3], "relu", init, seed, i, data, output="softmax", epochs=15)
        _assert_history_close(bt, i, single)
        np.testing.assert_allclose(bt.predict_proba(X)[i], model.predict_proba(torch.as_tensor(X)).numpy(), atol=1e-5)
    assert bt.predict_proba(X).shape == (2, 90, 3)


def test_initial_weights_equal_apply_init():
    critical = {"name": "critical", "activation": "relu", "sigma_b2": 0.1}  # biases N(0, 0.1) from the same spec
    inits = ["he_normal", "glorot_uniform", {"name": "truncated_normal", "std": 0.3}, "orthogonal", "sparse", critical]
    biases = ["zeros", "normal", "uniform", "zeros", "zeros", critical]
    stack = StackedMLP.initialized([3, 6, 4, 1], "relu", inits, [7, 8, 9, 10, 11, 12], biases)
    for i, init in enumerate(inits):
        bias = biases[i]
        want = apply_init(MLP([3, 6, 4, 1], "relu"), init, bias, generator=7 + i)
        for got, expected in zip(stack.to_model(i).parameters(), want.parameters(), strict=False):
            assert torch.equal(got, expected)


def test_diverged_model_is_frozen_and_others_unaffected(moons):
    huge = {"name": "constant", "value": 1e20}  # logits overflow to inf: the loss is not finite
    inits = ["he_normal", huge, "glorot_uniform"]
    bt = BatchedTrainer([2, 10, 1], "relu", inits, [0, 1, 2], epochs=12).fit(*moons)
    assert list(bt.diverged_epoch_) == [-1, 0, -1]
    assert np.isnan(bt.history_["loss"][1, 1:]).all() and not np.isfinite(bt.history_["loss"][1, 0])
    alone = BatchedTrainer([2, 10, 1], "relu", ["he_normal", "glorot_uniform"], [0, 2], epochs=12).fit(*moons)
    for key in alone.history_:
        np.testing.assert_array_equal(bt.history_[key][[0, 2]], alone.history_[key])
    single, model = _single([2, 10, 1], "relu", huge, 1, 0, moons, epochs=12)
    assert single.diverged_epoch_ == 0
    for got, want in zip(bt.to_model(1).parameters(), model.parameters(), strict=False):  # frozen where Trainer stopped
        torch.testing.assert_close(got, want, equal_nan=True)


def test_divergence_in_a_later_epoch_matches_trainer(moons):
    # A deep linear net with large weights and SGD blows up in epoch 2; sigma_w2 = 0.5 (ordered) survives.
    kw = {"optimizer": "sgd", "learning_rate": 0.1, "epochs": 10}
    inits = [_vs(0.5, "uniform"), {"name": "normal", "std": 1.0}, "he_uniform"]
    sizes = [2, 16, 16, 16, 1]
    bt = BatchedTrainer(sizes, "linear", inits, [0, 1, 2], chunk_size=2, **kw).fit(*moons)
    assert list(bt.diverged_epoch_) == [-1, 2, -1]
    for i, init in enumerate(inits):
        single, model = _single(sizes, "linear", init, i, 0, moons, **kw)
        assert bt.diverged_epoch_[i] == (-1 if single.diverged_epoch_ is None else single.diverged_epoch_)
        if _ordered(sizes, "linear", init):  # the numbers only in the ordered phase (the first init)
            np.testing.assert_allclose(bt.history_["loss"][i], single.history_["loss"], rtol=RTOL)
    assert np.isnan(bt.history_["loss"][1, 3:]).all()
    survivors = BatchedTrainer(sizes, "linear", [inits[0], inits[2]], [0, 2], **kw).fit(*moons)
    np.testing.assert_allclose(bt.history_["val_loss"][[0, 2]], survivors.history_["val_loss"], rtol=1e-6)


def test_callbacks_get_per_model_arrays_and_can_stop(moons):
    seen = []

    class StopAfterThree:
        def on_epoch_end(self, trainer, epoch, logs):
            seen.append({k: v.shape for k, v in logs.items()})
            if epoch == 2:
                trainer.stop_training = True

    bt = BatchedTrainer([2, 4, 1], "tanh", ["he_normal"] * 5, range(5), epochs=50, callbacks=[StopAfterThree()]).fit(*moons)
    assert len(seen) == 3 and seen[0] == {k: (5,) for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    assert bt.history_["val_accuracy"].shape == (5, 3) and bt.epochs_run_ == 3


def test_chunking_does_not_change_numbers(moons):
    args = ([2, 6, 1], "relu", ["he_normal", "glorot_uniform", "lecun_uniform"] * 3, list(range(9)))
    one = BatchedTrainer(*args, order_seeds=[0, 1, 2] * 3, epochs=8).fit(*moons)
    many = BatchedTrainer(*args, order_seeds=[0, 1, 2] * 3, epochs=8, chunk_size=2).fit(*moons)
    for key in one.history_:
        np.testing.assert_allclose(one.history_[key], many.history_[key], rtol=1e-6)
    assert len(many.stacks_) == 5 and len(many.to_models()) == 9


def test_predict_proba_equals_to_models(moons):
    X = moons[0]
    bt = BatchedTrainer([2, 5, 1], "relu", ["he_normal"] * 3, [1, 2, 3], epochs=3).fit(*moons)
    probs = bt.predict_proba(X)
    assert probs.shape == (3, len(X))
    for i, model in enumerate(bt.to_models()):
        np.testing.assert_allclose(probs[i], model.predict_proba(torch.as_tensor(X)).numpy(), atol=1e-6)


def test_bad_arguments_name_the_field():
    with pytest.raises(ValidationError, match="init_seeds needs one entry per model \\(2\\), got 3"):
        BatchedTrainer([2, 3, 1], "relu", ["he_normal", "zeros"], [1, 2, 3])
    with pytest.raises(ValidationError, match="unknown initializer 'he_norml'; did you mean 'he_normal'"):
        BatchedTrainer([2, 3, 1], "relu", ["he_norml"])
    with pytest.raises(ValidationError, match="unknown optimizer 'adamw'"):
        BatchedTrainer([2, 3, 1], "relu", ["he_normal"], optimizer="adamw")
    with pytest.raises(ValidationError, match="X has 3 features, the models expect 2"):
        BatchedTrainer([2, 3, 1], "relu", ["he_normal"], epochs=1).fit(np.zeros((4, 3), np.float32), np.zeros(4))


# --------------------------------------------------------------------------- residual nets (Playground #141)
# A residual layer h' = h + tanh(W h + b) has the Jacobian I + D W (D = diag tanh'(z)), whose mean squared
# gain is 1 + chi_1 (the identity plus the plain layer's chi_1; the cross term has zero mean): unlike a plain
# ordered layer it never shrinks a rounding difference, it can grow it by at most sqrt(1 + chi_1). The case
# stays ordered because every branch is deep in the ordered phase: tanh with sigma_w2 <= 0.3 has
# chi_1 = sigma_w2 E[tanh'(z)^2] <= 0.3, so over its 3 residual layers a difference grows by less than
# 1.3^(3/2) = 1.5 per pass, a constant, not a power of the depth (asserted below from initlab.theory).
RESIDUAL_SIZES = [2, 8, 8, 8, 8, 1]  # layers 2-4 add their input; the first (2 -> 8) and the output are plain
RESIDUAL_INITS = [_vs(0.3), _vs(0.2), _vs(0.3, "uniform"), {"name": "orthogonal", "gain": 0.5}]


def test_the_residual_case_is_ordered():
    chi = _max_chi_1(RESIDUAL_SIZES, "tanh", RESIDUAL_INITS[0])
    for init in RESIDUAL_INITS:
        assert _max_chi_1(RESIDUAL_SIZES, "tanh", init) <= 0.3 + 1e-9, init
    assert (1 + chi) ** (3 / 2) < 1.5


def test_residual_training_matches_single_trainer_runs(moons):
    init_seeds, order_seeds = [0, 1, 2, 3], [0, 1, 0, 2]
    opt = {"optimizer": "adam", "learning_rate": 0.01}
    bt = BatchedTrainer(RESIDUAL_SIZES, "tanh", RESIDUAL_INITS, init_seeds, order_seeds=order_seeds, epochs=20,
                        chunk_size=3, residual=True, **opt).fit(*moons)
    plain = BatchedTrainer(RESIDUAL_SIZES, "tanh", RESIDUAL_INITS, init_seeds, order_seeds=order_seeds, epochs=20,
                           **opt).fit(*moons)
    Xt, yt, Xv, yv = moons
    for i in range(4):
        model = apply_init(MLP(RESIDUAL_SIZES, "tanh", residual=True), RESIDUAL_INITS[i], "zeros",
                           generator=init_seeds[i])
        single = Trainer(model, seed=order_seeds[i], epochs=20, **opt).fit(Xt, yt, Xv, yv)
        _assert_history_close(bt, i, single)
        trained = bt.to_model(i)
        assert trained.residual and trained.skips == [False, True, True, True]
        for got, want in zip(trained.parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    # the flag changes the numbers: the plain stack from the same weights predicts otherwise
    gap = np.abs(plain.predict_proba(Xv) - bt.predict_proba(Xv)).max(axis=1)  # (M,)
    assert (gap > 0.01).all(), gap


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("activation, opt", [("tanh", {"optimizer": "adam"}), ("relu", {"optimizer": "sgd", "momentum": 0.9,
                                                                                        "learning_rate": 0.05})])
def test_cuda_matches_cpu(moons, path, activation, opt):
    if path == "fused":
        pytest.skip("on a GPU the trainer runs its torch path; compared once")
    args = ([2, 8, 6, 1], activation, [_vs(0.8), _vs(0.5, "uniform"), "glorot_normal"], [0, 1, 2])
    cpu = BatchedTrainer(*args, order_seeds=[0, 1, 0], epochs=10, fused=False, **opt).fit(*moons)
    gpu = BatchedTrainer(*args, order_seeds=[0, 1, 0], epochs=10, device="cuda", **opt).fit(*moons)
    assert gpu.path_ == "torch"
    for key in cpu.history_:
        np.testing.assert_allclose(gpu.history_[key], cpu.history_[key], rtol=1e-4, atol=1e-6, err_msg=key)
    for a, b in zip(gpu.weights(), cpu.weights(), strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=1e-5)
