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
    inits = ["he_normal", "glorot_uniform", "zeros"]
    bt = BatchedTrainer([2, 10, 1], "relu", inits, init_seeds=[3, 4, 5], order_seeds=[0, 0, 1], epochs=5).fit(Xt, yt, Xv, yv)
    for i, (init, seed, data_seed) in enumerate(zip(inits, [3, 4, 5], [0, 0, 1])):
        model = apply_init(MLP([2, 10, 1], "relu"), init, "zeros", generator=seed)
        single = Trainer(model, seed=data_seed, epochs=5).fit(Xt, yt, Xv, yv)
        np.testing.assert_allclose(bt.history_["loss"][i], single.history_["loss"], rtol=1e-5)
    assert bt.predict_proba(Xv).shape == (3, len(Xv))
