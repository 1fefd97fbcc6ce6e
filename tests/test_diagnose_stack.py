"""Diagnosing a stack of M MLPs at once equals diagnosing each rebuilt model alone."""

from __future__ import annotations

import pytest
import torch

from initlab import datasets
from initlab.diagnostics import diagnose
from initlab.diagnostics.stacked import diagnose_stack, distinct_units_stacked
from initlab.diagnostics.symmetry import distinct_units
from initlab.training import BatchedTrainer

INITS = ["zeros", "he_normal", "glorot_uniform", {"name": "normal", "std": 1e-7}, "orthogonal", {"name": "normal", "std": 3.0}]


@pytest.fixture(scope="module")
def data():
    ds = datasets.load("moons", 100, 0.1, 0)
    return torch.as_tensor(ds.X[:80]), torch.as_tensor(ds.y[:80])


@pytest.mark.parametrize("activation, sizes, epochs, residual", [
    ("relu", [2, 10, 1], 0, False), ("tanh", [2, 8, 8, 1], 3, False), ("sigmoid", [2, 10, 1], 2, False),
    ("elu", [2, 6, 6, 6, 1], 2, False),
    # residual: the second and third hidden layers add their input (h + act(W h + b)), the 6 -> 4 does not
    ("relu", [2, 6, 6, 6, 4, 1], 0, True), ("tanh", [2, 6, 6, 6, 4, 1], 3, True),
])
def test_stack_diagnosis_equals_each_model_diagnosed_alone(data, activation, sizes, epochs, residual):
    X, y = data
    bt = BatchedTrainer(sizes, activation, INITS, list(range(len(INITS))), epochs=max(1, epochs), residual=residual)
    if epochs:
        bt.fit(X.numpy(), y.numpy())
    stacked = diagnose_stack(bt.stacks_[0], X, y)
    for i, got in enumerate(stacked):
        ref = diagnose(bt.to_model(i), X, y)
        assert got.codes == ref.codes
        assert [v.message for v in got.verdicts] == [v.message for v in ref.verdicts]
        assert got.loss == pytest.approx(ref.loss, rel=1e-5)
        for a, b in zip(got.layers, ref.layers, strict=False):
            for key, value in a.to_dict().items():
                expected = b.to_dict()[key]
                if isinstance(value, float) and expected is not None:
                    assert value == pytest.approx(expected, rel=1e-5, abs=1e-6), (i, a.name, key)
                else:
                    assert value == expected, (i, a.name, key)


def test_softmax_stack_diagnosis(data):
    ds = datasets.load("digits")
    X, y = torch.as_tensor(ds.X[:64]), torch.as_tensor(ds.y[:64])
    bt = BatchedTrainer([64, 16, 10], "relu", ["zeros", "he_normal"], [0, 1], output="softmax")
    for got, i in zip(diagnose_stack(bt.stacks_[0], X, y), range(2), strict=False):
        ref = diagnose(bt.to_model(i), X, y)
        assert got.codes == ref.codes and got.loss == pytest.approx(ref.loss, rel=1e-5)
        assert [s.distinct_units for s in got.layers] == [s.distinct_units for s in ref.layers]


def test_batched_distinct_units_follow_the_single_rule():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(20, 6, 3, generator=gen)
    w[:, 1] = w[:, 0]  # units 0 and 1 share incoming weights ...
    out = torch.randn(20, 6, 2, generator=gen)
    out[::2, 1] = out[::2, 0]  # ... and, in every other model, outgoing weights
    got = distinct_units_stacked(w, out).tolist()
    want = [distinct_units(w[i, :, :2], w[i, :, 2], [out[i]]) for i in range(20)]
    assert got == want and got[0] == 5 and got[1] == 6


# ---------------------------------------------------------------- the batched readout (issue 25.3)
@pytest.mark.parametrize("rows", [1, 2, 3, 7, 64, 80, 256])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 30.0])
def test_batched_readout_equals_each_model_measured_alone_to_the_bit(rows, scale):
    from initlab.diagnostics.readout import measure_readout, measure_readouts

    gen = torch.Generator().manual_seed(rows)
    logits = (torch.randn(300, rows, 1, generator=gen) * scale
              + torch.randn(300, 1, 1, generator=gen) * 3 * scale).float()  # (M, N, 1)
    logits[3] = 0.0  # a zero readout
    logits[4, 0, 0] = float("nan")  # not finite: None
    logits[5, -1, 0] = float("inf")
    y = (torch.rand(rows, generator=gen) > 0.5).long()
    got = measure_readouts(logits, y)
    assert got[4] is None and got[5] is None
    for i, measured in enumerate(got):
        assert measured == measure_readout(logits[i], y), i  # dict equality: every float to the bit


def test_batched_readout_of_softmax_outputs_and_float_targets_takes_the_one_model_path():
    from initlab.diagnostics.readout import measure_readout, measure_readouts

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 40, 3, generator=gen)
    y = torch.randint(0, 3, (40,), generator=gen)
    assert measure_readouts(logits, y) == [measure_readout(logits[i], y) for i in range(5)]
    assert measure_readouts(logits[..., :1], y) == [None] * 5  # three classes, one logit: not class targets
    y_float = (torch.rand(40, generator=gen) > 0.5).float()
    assert measure_readouts(logits[..., :1], y_float) == [measure_readout(logits[i, :, :1], y_float) for i in range(5)]


def test_stack_rows_are_the_dataclass_rows_with_every_field_in_order(data):
    """The rows are built without ``dataclasses.replace`` (a sweep builds thousands): each must equal
    the LayerStats built from its own fields, with the fields in declaration order (the store's JSON)."""
    import dataclasses

    from initlab.diagnostics.types import LayerStats

    X, y = data
    bt = BatchedTrainer([2, 8, 8, 1], "tanh", INITS, list(range(len(INITS))), epochs=2)
    bt.fit(X.numpy(), y.numpy())
    names = [f.name for f in dataclasses.fields(LayerStats)]
    for diag in diagnose_stack(bt.stacks_[0], X, y):
        for row in diag.layers:
            assert list(vars(row)) == names
            assert row == LayerStats(**{n: getattr(row, n) for n in names})


def test_verdict_to_dict_is_dataclasses_asdict():
    import dataclasses

    from initlab.diagnostics.types import Verdict

    verdict = Verdict("symmetry", "only 1 distinct unit of 10", ["0", "2"], "draw the weights at random")
    got = verdict.to_dict()
    assert got == dataclasses.asdict(verdict) and list(got) == [f.name for f in dataclasses.fields(Verdict)]
    got["layers"].append("4")
    assert verdict.layers == ["0", "2"]  # a copy, as asdict gives
