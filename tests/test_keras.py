"""Keras 3 models on the torch backend: diagnose (and doctor), apply_init, the Keras Monitor
callback and initlab's initializers as Keras initializers; the one-line errors without Keras
or with another backend. Keras is imported once for the module (it costs seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("Keras was imported on another backend before this module", allow_module_level=True)

import initlab  # noqa: E402
import initlab.keras as ik  # noqa: E402
from initlab import ValidationError  # noqa: E402
from initlab.cli.main import main  # noqa: E402
from initlab.integrations.keras import KerasUnavailable, require_keras  # noqa: E402
from initlab.models import MLP  # noqa: E402

layers = keras.layers
SRC = Path(__file__).resolve().parents[1] / "src"


def notebook_model(hidden: str = "relu", zero: bool = True, seed: int = 0):
    """The classic notebook's model: Dense(10, hidden, input_dim=2), Dense(1, sigmoid), weights set to 0."""
    model = keras.Sequential([keras.Input((2,)), layers.Dense(10, activation=hidden),
                              layers.Dense(1, activation="sigmoid")])
    if zero:
        model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    else:
        initlab.apply_init(model, "glorot_uniform", generator=seed)
    return model


def torch_twin(model, hidden: str) -> MLP:
    """initlab's own MLP with the Keras model's weights (kernel (in, out) -> weight (out, in))."""
    twin = MLP([2, 10, 1], hidden)
    w1, b1, w2, b2 = model.get_weights()
    with torch.no_grad():
        twin.hidden1.weight.copy_(torch.tensor(w1.T))
        twin.hidden1.bias.copy_(torch.tensor(b1))
        twin.output.weight.copy_(torch.tensor(w2.T))
        twin.output.bias.copy_(torch.tensor(b2))
    return twin


@pytest.fixture(scope="module")
def moons():
    X, y = initlab.datasets.moons(100, seed=0)
    return X.astype(np.float32), y


# -- diagnose ------------------------------------------------------------------------------------
def test_layers_are_named_by_their_keras_names(moons):
    keras.backend.clear_session()  # resets Keras' name counters
    model = notebook_model("relu")
    diag = initlab.diagnose(model, *moons)
    assert [s.name for s in diag.layers] == ["dense", "dense_1"]
    assert [s.kind for s in diag.layers] == ["Dense", "Dense"]
    assert [s.activation for s in diag.layers] == ["relu", "sigmoid"]
    assert isinstance(diag, ik.KerasDiagnosis) and diag.not_measured == []
    assert diag.to_dict()["not_measured"] == []


@pytest.mark.parametrize("hidden", ["relu", "sigmoid"])
def test_zero_init_notebook_model_gets_initlabs_own_verdict(moons, hidden):
    model = notebook_model(hidden)
    diag = initlab.diagnose(model, *moons)
    own = initlab.diagnose(torch_twin(model, hidden), torch.as_tensor(moons[0]), torch.as_tensor(moons[1]))
    assert diag.codes == own.codes
    assert diag.codes == (["dead_units"] if hidden == "relu" else ["symmetry"])
    hidden_k, hidden_t = diag.layers[0], own.layers[0]
    assert hidden_k.dead_fraction == hidden_t.dead_fraction == (1.0 if hidden == "relu" else 0.0)
    assert hidden_k.distinct_units == hidden_t.distinct_units == 1
    assert hidden_k.grad_norm == hidden_t.grad_norm == 0.0
    assert diag.loss == pytest.approx(own.loss, rel=1e-6) and diag.loss == pytest.approx(np.log(2), rel=1e-6)
    assert diag.layers[1].output_grad_norm == pytest.approx(own.layers[1].output_grad_norm, rel=1e-6)
    # coverage counted as for the torch twin: 4 tensors (2 kernels, 2 biases), 2*10+10+10+1 = 41 parameters
    assert (diag.coverage.tensors, diag.coverage.measured_tensors, diag.coverage.parameters,
            diag.coverage.measured_parameters) == (own.coverage.tensors, own.coverage.measured_tensors,
                                                   own.coverage.parameters, own.coverage.measured_parameters) == (4, 4, 41, 41)
    for stats, layer in zip(diag.layers, model.layers, strict=False):  # each row measured its layer's kernel and bias, by Keras path
        assert stats.params == [layer.kernel.path, layer.bias.path] and layer.kernel.path.endswith(f"{stats.name}/kernel")


def test_random_weights_measure_as_the_equivalent_torch_mlp(moons):
    model = notebook_model("relu", zero=False, seed=3)
    diag = initlab.diagnose(model, *moons)
    own = initlab.diagnose(torch_twin(model, "relu"), torch.as_tensor(moons[0]), torch.as_tensor(moons[1]))
    k, t = diag.layers[0], own.layers[0]
    for field in ("std", "pre_std", "dead_fraction", "grad_norm", "output_grad_norm", "weight_std",
                  "healthy_weight_std", "bias_grad_norm", "input_rms"):
        assert getattr(k, field) == pytest.approx(getattr(t, field), rel=1e-5, abs=1e-7), field
    assert k.distinct_units == t.distinct_units == 10 and k.outgoing_compared and t.outgoing_compared
    assert diag.layers[1].grad_norm == pytest.approx(own.layers[1].grad_norm, rel=1e-5)
    assert diag.loss == pytest.approx(own.loss, rel=1e-6)
    assert diag.codes == own.codes


def test_diagnose_leaves_the_keras_model_as_it_was(moons):
    model = notebook_model("relu", zero=False, seed=1)
    before = model.predict(moons[0], verbose=0)
    weights = [w.copy() for w in model.get_weights()]
    initlab.diagnose(model, *moons)
    assert model.layers[0].activation is keras.activations.relu
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=False))
    assert all(v.value.grad is None for v in model.trainable_variables)
    np.testing.assert_array_equal(model.predict(moons[0], verbose=0), before)


def test_activation_layers_pair_through_norm_and_dropout():
    model = keras.Sequential([keras.Input((8,)), layers.Dense(16, name="a"), layers.BatchNormalization(),
                              layers.Activation("tanh"), layers.Dropout(0.5), layers.Dense(16, name="b"),
                              layers.ReLU(), layers.Dense(3, activation="softmax", name="c")])
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 64)
    diag = initlab.diagnose(model, x, y)
    assert [(s.name, s.activation) for s in diag.layers] == [("a", "tanh"), ("b", "relu"), ("c", "softmax")]
    assert [s.outgoing_compared for s in diag.layers] == [True, True, False]
    assert diag.layers[0].saturable and not diag.layers[1].saturable
    # the BatchNormalization is measured as the torch path measures F.batch_norm: gamma and beta are covered
    (norm,) = diag.norms
    assert norm["kind"] == "batch_norm" and norm["gain_mean"] == 1.0 and norm["output_std"] > 0
    assert [p.rsplit("/", 1)[1] for p in norm["params"]] == ["gamma", "beta"]
    parameters = 8 * 16 + 16 + 2 * 16 + 16 * 16 + 16 + 16 * 3 + 3
    assert diag.coverage.complete and (diag.coverage.tensors, diag.coverage.parameters) == (8, parameters)
    # the default loss is cross-entropy on the logits = Keras' sparse CE on the softmax output
    probs = model(torch.as_tensor(x))
    expected = float(keras.losses.sparse_categorical_crossentropy(torch.as_tensor(y), probs).mean().detach())
    assert diag.loss == pytest.approx(expected, rel=1e-4)


def test_conv_layers_measured_and_unknown_layers_listed():
    inp = keras.Input((10, 10, 3))
    x = layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    x = layers.Conv2D(6, 3, activation="relu", name="c2")(x)
    x = layers.DepthwiseConv2D(3, name="dw")(x)
    out = layers.Dense(2, name="head")(layers.Flatten()(x))
    model = keras.Model(inp, out)
    diag = initlab.diagnose(model, np.random.default_rng(0).normal(size=(16, 10, 10, 3)).astype(np.float32))
    assert [s.name for s in diag.layers] == ["c1", "c2", "head"]
    assert [s.units for s in diag.layers] == [8, 6, 2]
    assert diag.layers[0].healthy_weight_std == pytest.approx(np.sqrt(2 / (3 * 3 * 3)))  # fan_in = in * kh * kw
    assert diag.layers[1].healthy_weight_std == pytest.approx(np.sqrt(2 / (8 * 3 * 3)))
    assert diag.layers[0].outgoing_compared  # c2 reads c1's channels
    assert [(d["name"], d["kind"]) for d in diag.not_measured] == [("dw", "DepthwiseConv2D")]
    assert "not_measured=['dw']" in repr(diag) and "Not measured" in diag._repr_html_()


def test_channels_first_conv_counts_channels_as_units():
    model = keras.Sequential([keras.Input((3, 8, 8)),
                              layers.Conv2D(4, 3, data_format="channels_first", activation="relu"),
                              layers.Conv2D(2, 3, data_format="channels_first")])
    diag = initlab.diagnose(model, np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype(np.float32))
    assert [s.units for s in diag.layers] == [4, 2] and diag.layers[0].outgoing_compared


def test_a_bare_layer_and_a_subclassed_model():
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    solo = layers.Dense(5, activation="tanh", name="solo")
    solo.build((None, 3))
    assert [(s.name, s.activation, s.units) for s in initlab.diagnose(solo, x).layers] == [("solo", "tanh", 5)]

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = layers.Dense(6, activation="relu", name="a"), layers.Dense(2, name="b")

        def call(self, inputs):
            return self.b(self.a(inputs))

    diag = initlab.diagnose(Net(), x, np.array([0, 1] * 4))  # built by this first call
    assert [s.name for s in diag.layers] == ["a", "b"] and diag.layers[0].outgoing_compared


def test_a_multi_input_model():
    a, b = keras.Input((3,)), keras.Input((2,))
    joined = layers.Concatenate()([layers.Dense(4, activation="relu", name="da")(a),
                                   layers.Dense(4, activation="tanh", name="db")(b)])
    model = keras.Model([a, b], layers.Dense(1, name="o")(joined))
    rng = np.random.default_rng(0)
    diag = initlab.diagnose(model, [rng.normal(size=(8, 3)), rng.normal(size=(8, 2))])
    assert [(s.name, s.activation) for s in diag.layers] == [("da", "relu"), ("db", "tanh"), ("o", None)]
    assert diag.input_shape == (8, 3)
    assert not diag.layers[0].outgoing_compared  # "o" reads a concatenation: no columns are claimed


def test_layers_initlab_does_not_know_are_listed_never_a_traceback():
    inp = keras.Input((5,), dtype="int32")
    out = layers.Dense(1, activation="sigmoid", name="out")(layers.LSTM(6)(layers.Embedding(20, 4, name="emb")(inp)))
    model = keras.Model(inp, out)
    tokens = np.random.default_rng(0).integers(0, 20, (8, 5))
    diag = initlab.diagnose(model, tokens)
    assert [s.name for s in diag.layers] == ["out"]
    assert [d["kind"] for d in diag.not_measured] == ["Embedding", "LSTMCell"]
    assert all("cannot map to units" in d["reason"] for d in diag.not_measured)
    # coverage: the Dense's kernel and bias of 1 + 6 + 4 * 6 * (4 + 6 + 1) + 20 * 4 parameters, the rest listed with why
    cov = diag.coverage
    assert (cov.tensors, cov.measured_tensors, cov.parameters, cov.measured_parameters) == (6, 2, 351, 7)
    assert [u["name"].split("/")[-1] for u in cov.unattributed] == ["embeddings", "kernel", "recurrent_kernel", "bias"]
    assert all("cannot map to units" in u["reason"] and u["grad_norm"] > 0 for u in cov.unattributed)
    assert "measured 2 of 6 parameter tensors (7 of 351 parameters, 2%)" in cov.sentence()
    assert diag.to_dict()["coverage"]["unattributed"][0]["shape"] == [20, 4]
    lora = keras.Sequential([keras.Input((3,)), layers.Dense(4, activation="relu", name="lo"), layers.Dense(1, name="h")])
    lora.layers[0].enable_lora(2)
    diag = initlab.diagnose(lora, np.ones((4, 3), np.float32))
    assert [s.name for s in diag.layers] == ["h"] and diag.not_measured[0]["name"] == "lo"
    assert "LoRA-enabled" in diag.not_measured[0]["reason"]
    bare = keras.Model(inp, layers.LSTM(3)(layers.Embedding(20, 4, name="emb2")(inp)))
    with pytest.raises(ValidationError, match=r"no Dense or Conv layer initlab can measure \(not measured: emb2 "):
        initlab.diagnose(bare, tokens)


def test_doctor_on_a_keras_factory(tmp_path, capsys):
    factory = tmp_path / "kmodels.py"
    factory.write_text(
        "import os\nos.environ.setdefault('KERAS_BACKEND', 'torch')\nimport numpy as np\nimport keras\n\n"
        "def zero_relu():\n"
        "    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(10, activation='relu', name='hidden'),\n"
        "                          keras.layers.Dense(1, activation='sigmoid', name='out')])\n"
        "    m.set_weights([np.zeros_like(w) for w in m.get_weights()])\n"
        "    return m\n")
    code = main(["doctor", f"{factory}:zero_relu", "--input-shape", "2", "--init", "he_normal",
                 "--out", str(tmp_path / "report")])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [s["name"] for s in data["before"]["layers"]] == ["hidden", "out"]
    assert [v["code"] for v in data["before"]["verdicts"]] == ["dead_units"]
    assert data["before"]["layers"][0]["dead_fraction"] == 1.0
    assert data["after"]["layers"][0]["distinct_units"] == 10 and data["after"]["layers"][0]["dead_fraction"] < 1
    assert "dead_units" in out


# -- apply_init and initializers -------------------------------------------------------------------
def test_apply_init_draws_what_initlab_draws_for_the_torch_twin():
    model = notebook_model("relu")
    initlab.apply_init(model, "he_normal", bias="zeros", generator=5)
    twin = initlab.apply_init(MLP([2, 10, 1], "relu"), "he_normal", bias="zeros", generator=5)
    w1, b1, w2, b2 = model.get_weights()
    np.testing.assert_array_equal(w1.T, twin.hidden1.weight.detach().numpy())
    np.testing.assert_array_equal(w2.T, twin.output.weight.detach().numpy())
    assert not b1.any() and not b2.any()
    with pytest.raises(ValidationError, match="data-dependent"):
        initlab.apply_init(model, "lsuv")


@pytest.mark.parametrize("shape", [(300, 200), (3, 3, 16, 32), (5, 40, 8)])
@pytest.mark.parametrize("name", ["he_normal", "glorot_uniform", "orthogonal", "lecun_normal"])
def test_initializer_is_initlabs_draw_in_keras_layout(name, shape):
    init = ik.initializer(name, seed=7)
    values = keras.ops.convert_to_numpy(init(shape, "float32"))
    assert values.shape == shape and values.dtype == np.float32
    torch_shape = (shape[-1], shape[-2], *shape[:-2])  # (out, in, *kernel)
    own = initlab.initializers.get(name)(torch.empty(torch_shape), torch.Generator().manual_seed(7))
    np.testing.assert_array_equal(values, own.permute(*range(2, own.ndim), 1, 0).numpy())
    np.testing.assert_array_equal(values, keras.ops.convert_to_numpy(init(shape, "float32")))  # seeded: same again
    assert not np.array_equal(values, keras.ops.convert_to_numpy(ik.initializer(name, seed=8)(shape)))


@pytest.mark.parametrize("name", [n for n in initlab.initializers.names() if n != "lsuv"])
def test_every_catalog_scheme_works_as_a_keras_initializer(name):
    values = keras.ops.convert_to_numpy(ik.initializer(name, seed=3)((6, 4)))
    own = initlab.initializers.get(name)(torch.empty(4, 6), torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(values, own.T.numpy())


@pytest.mark.parametrize("shape,fan_in", [((400, 300), 400), ((3, 3, 32, 64), 288)])
def test_he_normal_std_uses_the_keras_layers_fan_in(shape, fan_in):
    from scipy import stats

    values = keras.ops.convert_to_numpy(ik.initializer("kaiming_normal", seed=0)(shape)).ravel()
    std = np.sqrt(2 / fan_in)  # He et al. (2015): N(0, 2 / fan_in), untruncated in torch's spelling
    assert stats.kstest(values, "norm", args=(0, std)).pvalue > 1e-4
    assert values.std() == pytest.approx(std, rel=0.02)


def test_initializer_config_round_trips_and_builds_layers():
    init = ik.initializer({"name": "variance_scaling", "scale": 2.0, "mode": "fan_out"}, seed=3)
    config = keras.initializers.serialize(init)
    again = keras.initializers.deserialize(json.loads(json.dumps(config)))
    assert isinstance(again, ik.Initializer) and again.get_config() == init.get_config()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(init((6, 4))), keras.ops.convert_to_numpy(again((6, 4))))
    layer = layers.Dense(4, kernel_initializer=ik.initializer("he_uniform", seed=1))
    layer.build((None, 6))
    np.testing.assert_array_equal(layer.get_weights()[0], keras.ops.convert_to_numpy(ik.initializer("he_uniform", seed=1)((6, 4))))


def test_initializer_bad_input_is_one_line():
    with pytest.raises(ValidationError, match="did you mean 'he_normal'"):
        ik.initializer("he_norml")
    with pytest.raises(ValidationError, match="data-dependent"):
        ik.initializer("lsuv")
    with pytest.raises(ValidationError, match="seed"):
        ik.initializer("he_normal", seed=-1)


# -- Monitor ---------------------------------------------------------------------------------------
def _fit(model, X, y, monitor, **kwargs):
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model.fit(X, y.astype(np.float32), batch_size=32, verbose=0, callbacks=[monitor], **kwargs)


def test_monitor_records_the_dead_zero_init_relu_layer(moons, tmp_path):
    X, y = moons
    model = notebook_model("relu")
    monitor = ik.Monitor(every=2, out=tmp_path / "auto")
    _fit(model, X, y, monitor, epochs=3, validation_split=0.2)  # 80 rows: 3 steps per epoch, 9 in all
    written = sorted(p.name for p in (tmp_path / "auto").iterdir())
    assert written == ["monitor.json", "monitor_heatmap.png", "monitor_histograms.png"]
    assert monitor.steps == [1, 3, 5, 7, 9]
    assert monitor.layer_names == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(monitor.series("dead_fraction")[0], np.ones(5))
    np.testing.assert_array_equal(monitor.series("grad_norm")[0], np.zeros(5))  # exactly 0: no gradient reaches it
    np.testing.assert_array_equal(monitor.series("update_ratio")[0], np.zeros(5))
    assert (monitor.series("output_grad_norm")[1] > 0).all()  # the output layer still gets a gradient
    assert model.layers[0].activation is keras.activations.relu  # given back after recording
    paths = monitor.save(tmp_path / "saved")
    data = json.loads(paths["json"].read_text())
    assert data["steps"] == [1, 3, 5, 7, 9] and data["layers"][model.layers[0].name]["activation"] == "relu"
    assert paths["heatmap"].stat().st_size > 10_000 and paths["histograms"].stat().st_size > 10_000
    assert [s["step"] for s in monitor.snapshots] == [1, 3, 5, 9]  # recorded steps number 0, 1, 2, 4


def test_monitor_numbers_match_a_hand_computed_first_step(moons):
    X, y = moons
    model = notebook_model("relu", zero=False, seed=2)
    w0 = [w.copy() for w in model.get_weights()]
    xb, yb = torch.as_tensor(X[:32]), torch.as_tensor(y[:32].astype(np.float32)).reshape(-1, 1)
    loss = keras.losses.binary_crossentropy(yb, model(xb)).mean()
    kernel = model.layers[0].kernel.value
    (grad,) = torch.autograd.grad(loss, [kernel])
    monitor = ik.Monitor(every=1)
    _fit(model, X[:32], y[:32], monitor, epochs=1, shuffle=False)  # exactly one step
    row = monitor.records[0]["layers"][model.layers[0].name]
    assert monitor.steps == [1]
    assert row["grad_norm"] == pytest.approx(float(grad.norm()), rel=1e-5)
    w1 = model.get_weights()[0]
    assert row["update_ratio"] == pytest.approx(np.linalg.norm(w1 - w0[0]) / np.linalg.norm(w0[0]), rel=1e-5)
    with torch.no_grad():
        h = torch.relu(xb @ torch.as_tensor(w0[0]) + torch.as_tensor(w0[1]))
    assert row["std"] == pytest.approx(float(h.std()), rel=1e-5)
    assert row["dead_fraction"] == float((h == 0).all(dim=0).float().mean())


def test_monitor_steps_continue_across_fit_calls_and_reject_torch_use(moons):
    X, y = moons
    model = notebook_model("tanh", zero=False)
    monitor = ik.Monitor(every=4)
    _fit(model, X[:64], y[:64], monitor, epochs=2)  # 4 steps
    _fit(model, X[:64], y[:64], monitor, epochs=2)  # steps 5..8
    assert monitor.steps == [1, 5]
    with pytest.raises(ValidationError, match="Keras callback"):
        monitor.step()
    with pytest.raises(ValidationError, match="every"):
        ik.Monitor(every=0)
    with pytest.raises(ValidationError, match=r"a Keras model: use initlab.keras.Monitor"):
        initlab.Monitor(model)
    model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=True)
    with pytest.raises(ValidationError, match="jit_compile=False"):
        model.fit(X[:32], y[:32].astype(np.float32), verbose=0, callbacks=[ik.Monitor()])


# -- errors ----------------------------------------------------------------------------------------
def test_non_torch_backend_is_one_line(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(KerasUnavailable, match=r"torch backend, but keras runs on 'jax': set KERAS_BACKEND=torch"):
        require_keras()


def test_missing_keras_is_one_line_and_import_initlab_never_imports_it():
    code = ("import sys; import initlab; assert 'keras' not in sys.modules and 'initlab.keras' not in sys.modules\n"
            "sys.modules['keras'] = None\n"
            "try:\n    import initlab.keras\nexcept ImportError as err:\n    print(type(err).__name__, err)\n")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("KerasUnavailable initlab.keras needs Keras 3: pip install 'initlab[keras]', "
                                   "and set KERAS_BACKEND=torch before keras is imported")
