"""MLP, optimizers and the Trainer: Keras semantics, determinism, divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab import apply_init, datasets
from initlab._validation import ValidationError
from initlab.models import MLP, activation_names
from initlab.training import BatchedTrainer, Trainer, make_optimizer


@pytest.fixture(scope="module")
def moons_split():
    X, y = datasets.moons(100, 0.1, seed=0)
    return datasets.validation_split(X, y, 0.2)


def test_mlp_layout_and_names():
    net = MLP([2, 10, 5, 1], "tanh")
    assert [n for n, _ in net.named_children()] == ["hidden1", "act1", "hidden2", "act2", "output"]
    assert [lin.out_features for lin in net.linears] == [10, 5, 1]
    x = torch.randn(7, 2)
    assert net(x).shape == (7, 1) and net.predict_proba(x).shape == (7,)
    assert [h.shape for h in net.hidden(x)] == [(7, 10), (7, 5)]
    assert torch.all((net.predict_proba(x) > 0) & (net.predict_proba(x) < 1))


@pytest.mark.parametrize("activation", activation_names())
def test_every_activation_builds_and_runs(activation):
    out = MLP([3, 4, 2], activation, output="softmax").predict_proba(torch.randn(5, 3))
    assert out.shape == (5, 2) and torch.allclose(out.sum(-1), torch.ones(5))


@pytest.mark.parametrize("call,message", [
    (lambda: MLP([2, 0, 1], "relu"), "sizes[1] must be an integer in [1, inf], got 0"),
    (lambda: MLP([2, 10, 1], "rleu"), "unknown activation 'rleu'; did you mean 'relu'?"),
    (lambda: MLP([2], "relu"), "needs at least an input and an output size"),
    (lambda: Trainer(MLP([2, 1]), epochs=0), "epochs must be an integer in [1, inf], got 0"),
    (lambda: make_optimizer([torch.zeros(1, requires_grad=True)], "adamw"), "unknown optimizer 'adamw'; did you mean 'adam'?"),
    (lambda: make_optimizer([torch.zeros(1, requires_grad=True)], "sgd", -0.1), "learning_rate must be > 0"),
])
def test_bad_model_and_training_input(call, message):
    with pytest.raises(ValidationError) as err:
        call()
    assert message in str(err.value)


def test_adam_has_keras_defaults():
    opt = make_optimizer([torch.zeros(1, requires_grad=True)])
    group = opt.param_groups[0]
    assert group["lr"] == 1e-3 and group["betas"] == (0.9, 0.999) and group["eps"] == 1e-7
    rms = make_optimizer([torch.zeros(1, requires_grad=True)], "rmsprop").param_groups[0]
    assert rms["lr"] == 1e-3 and rms["rho"] == 0.9 and rms["eps"] == 1e-7 and rms["momentum"] == 0.0


# ---- Keras' update formulas, by hand ------------------------------------------------------
# A constant gradient g for a few steps from p = 0, computed in float64 with Keras 3's formulas
# (keras/src/optimizers/adam.py, rmsprop.py). |g| = 1e-4 is the gradient scale of a
# zero-initialized network, where the epsilon placement decides the step.
def _keras_adam_by_hand(g, steps, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7):
    p = m = v = 0.0
    out = []
    for t in range(1, steps + 1):
        m += (1 - beta1) * (g - m)
        v += (1 - beta2) * (g * g - v)
        p -= lr * math.sqrt(1 - beta2**t) / (1 - beta1**t) * m / (math.sqrt(v) + eps)
        out.append(p)
    return out


def _keras_rmsprop_by_hand(g, steps, lr=1e-3, rho=0.9, eps=1e-7, momentum=0.0):
    p = v = b = 0.0
    out = []
    for _ in range(steps):
        v = rho * v + (1 - rho) * g * g
        increment = lr * g / math.sqrt(v + eps)
        b = momentum * b + increment
        p -= b if momentum > 0 else increment
        out.append(p)
    return out


def _single_run(name, momentum, g, steps, lr=None):
    p = torch.zeros(3, requires_grad=True)
    opt = make_optimizer([p], name, lr, momentum)
    out = []
    for _ in range(steps):
        p.grad = torch.full((3,), g)
        opt.step()
        out.append(float(p[0].detach()))
    return out


def _flat_run(name, momentum, g, steps, lr=None):
    from initlab.training.batched import make_flat_optimizer

    p = torch.zeros(3)
    opt = make_flat_optimizer(name, 3, lr, momentum, torch.device("cpu"))
    out = []
    for _ in range(steps):
        opt.step(p, torch.full((3,), g))
        out.append(float(p[0]))
    return out


@pytest.mark.parametrize("run", [_single_run, _flat_run], ids=["Trainer", "BatchedTrainer"])
@pytest.mark.parametrize("g", [1e-4, -3e-3, 0.5])
@pytest.mark.parametrize("name, momentum, by_hand", [
    ("adam", 0.0, _keras_adam_by_hand),
    ("rmsprop", 0.0, _keras_rmsprop_by_hand),
    ("rmsprop", 0.9, lambda g, steps: _keras_rmsprop_by_hand(g, steps, momentum=0.9)),
])
def test_update_is_keras_formula_by_hand(run, g, name, momentum, by_hand):
    # float32 parameters; Keras computes Adam's lr_t in float32 too (0.999^t in float32 is
    # off by ~1e-5 relative), hence rtol 3e-5 for Adam.
    np.testing.assert_allclose(run(name, momentum, g, 6), by_hand(g, 6), rtol=3e-5 if name == "adam" else 2e-6)


def test_keras_numbers_at_zero_init_gradient_scale():
    # Recorded from keras.optimizers (Keras 3.15.1, torch backend), g = 1e-4 constant, p0 = 0.
    keras_adam = {1: -9.6934e-04, 5: -4.89996e-03}
    keras_rmsprop = {1: -3.1465842e-04, 5: -1.5608240e-03}
    keras_rmsprop_momentum = {1: -3.1465842e-04, 5: -4.1121803e-03}
    for run in (_single_run, _flat_run):
        adam = run("adam", 0.0, 1e-4, 5)
        rms = run("rmsprop", 0.0, 1e-4, 5)
        rms_m = run("rmsprop", 0.9, 1e-4, 5)
        for step in (1, 5):
            assert adam[step - 1] == pytest.approx(keras_adam[step], rel=1e-5)
            assert rms[step - 1] == pytest.approx(keras_rmsprop[step], rel=1e-6)
            assert rms_m[step - 1] == pytest.approx(keras_rmsprop_momentum[step], rel=1e-6)
    # PyTorch's epsilon placement takes a 10x larger first RMSprop step and a 3% larger Adam step here.
    p = torch.zeros(1, requires_grad=True)
    p.grad = torch.full((1,), 1e-4)
    torch.optim.RMSprop([p], lr=1e-3, alpha=0.9, eps=1e-7).step()
    assert float(p.detach()) / keras_rmsprop[1] == pytest.approx(10.0, rel=0.01)
    q = torch.zeros(1, requires_grad=True)
    q.grad = torch.full((1,), 1e-4)
    torch.optim.Adam([q], lr=1e-3, eps=1e-7).step()
    assert float(q.detach()) / keras_adam[1] == pytest.approx(1.03, abs=0.002)


def test_fused_adam_kernel_computes_keras_adam():
    # keras_adam_ runs torch's fused CPU kernel with a rescaled lr and eps; it must equal the
    # plain Keras arithmetic to float32 rounding (1 ulp of the parameter), gradients from 1e-6 to 1.
    from initlab.training.optim import keras_adam_

    gen = torch.Generator().manual_seed(0)
    n = 1000
    scale = 10.0 ** torch.randint(-6, 1, (n,), generator=gen)
    grads = [torch.randn(n, generator=gen) * (torch.rand(n, generator=gen) > 0.3) * scale for _ in range(5)]
    start = torch.linspace(-1, 1, n)
    params = []
    for fused in (True, False):
        p, m, v, scratch = start.clone(), torch.zeros(n), torch.zeros(n), torch.empty(n)
        for step in range(1, 41):
            keras_adam_([p], [grads[step % 5]], [m], [v], [scratch], step, 1e-3, 0.9, 0.999, 1e-7, fused)
        params.append(p)
    assert not torch.equal(params[0], start)
    torch.testing.assert_close(params[0], params[1], rtol=0.0, atol=2**-23)  # |p| <= 1: 1 ulp of 1


def _fit(split, init, activation="relu", seed=0, **kw):
    Xt, yt, Xv, yv = split
    model = apply_init(MLP([2, 10, 1], activation), init, "zeros", generator=seed)
    return Trainer(model, seed=seed, **kw).fit(Xt, yt, Xv, yv)


def test_keras_minibatching_80_rows_gives_3_steps_per_epoch(moons_split):
    steps = []
    cb = type("CB", (), {"on_step_end": lambda self, tr, step: steps.append(step)})()
    trainer = _fit(moons_split, "he_normal", epochs=2, callbacks=[cb])
    assert steps == [1, 2, 3, 4, 5, 6] and trainer.step_ == 6
    assert set(trainer.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in trainer.history_.values())


def test_same_seed_same_numbers_and_other_seed_other_numbers(moons_split):
    a = _fit(moons_split, "he_normal", seed=1, epochs=5).history_["loss"]
    b = _fit(moons_split, "he_normal", seed=1, epochs=5).history_["loss"]
    c = _fit(moons_split, "he_normal", seed=2, epochs=5).history_["loss"]
    assert a == b and a != c


def test_he_relu_learns_moons_and_zero_relu_does_not(moons_split):
    good = _fit(moons_split, "he_normal", epochs=100)
    zero = _fit(moons_split, "zeros", epochs=100)
    assert good.history_["val_accuracy"][-1] >= 0.8
    assert good.history_["loss"][-1] < good.history_["loss"][0]
    assert zero.history_["accuracy"][-1] == pytest.approx(0.5, abs=0.1)  # majority-class guessing
    assert zero.history_["loss"][-1] == pytest.approx(math.log(2), abs=0.01)


def test_multiclass_uses_cross_entropy():
    X, y = datasets.digits()
    model = apply_init(MLP([64, 32, 10], "relu", output="softmax"), "he_normal", generator=0)
    trainer = Trainer(model, epochs=5, batch_size=64, learning_rate=0.01).fit(X[:500], y[:500], X[500:700], y[500:700])
    assert isinstance(trainer.loss_fn_, torch.nn.CrossEntropyLoss)
    assert trainer.history_["val_accuracy"][-1] > 0.5


def test_divergence_stops_training_and_is_recorded(moons_split):
    trainer = _fit(moons_split, {"name": "normal", "std": 1e3}, optimizer="sgd", learning_rate=1e6, epochs=50)
    assert trainer.diverged_epoch_ is not None and trainer.diverged_epoch_ < 50
    assert not np.isfinite(trainer.history_["loss"][-1])


def test_callback_can_stop_training(moons_split):
    cb = type("Stop", (), {"on_epoch_end": lambda self, tr, epoch, logs: setattr(tr, "stop_training", epoch == 4)})()
    trainer = _fit(moons_split, "he_normal", epochs=50, callbacks=[cb])
    assert trainer.epochs_run_ == 5


def test_batched_trainer_equals_single_trainers(moons_split):
    Xt, yt, Xv, yv = moons_split
    # In the ordered phase (chi_1 < 1), where the two agree number for number (see test_batched.py).
    inits = [{"name": "he_normal", "negative_slope": 0.5}, "glorot_uniform", "zeros"]
    bt = BatchedTrainer([2, 10, 1], "relu", inits, init_seeds=[3, 4, 5], order_seeds=[0, 0, 1], epochs=5).fit(Xt, yt, Xv, yv)
    for i, (init, seed, data_seed) in enumerate(zip(inits, [3, 4, 5], [0, 0, 1], strict=False)):
        model = apply_init(MLP([2, 10, 1], "relu"), init, "zeros", generator=seed)
        single = Trainer(model, seed=data_seed, epochs=5).fit(Xt, yt, Xv, yv)
        np.testing.assert_allclose(bt.history_["loss"][i], single.history_["loss"], rtol=1e-5)
    assert bt.predict_proba(Xv).shape == (3, len(Xv))
