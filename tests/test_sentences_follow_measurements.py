"""Printed sentences of this wave are decided by the run's measurement, in every case they can be
printed (wave-2 review): each test builds a small case and checks the text against numbers the test
measures itself."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from initlab.autoinit import autoinit


def _std(t: torch.Tensor) -> float:
    return float(t.detach().double().std(unbiased=False))


class Branches(nn.Module):
    """x = x + block(x), blocks with no normalization (a ReLU MLP without it)."""

    def __init__(self, n: int = 8, width: int = 64, norm: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(*([nn.LayerNorm(width)] if norm else []), nn.Linear(width, width), nn.ReLU(),
                          nn.Linear(width, width)) for _ in range(n))

    def forward(self, x):
        for b in self.blocks:
            x = x + b(x)
        return x


def _stream_ratio(model: Branches, x: torch.Tensor) -> float:
    """max/min of the stream's std where it enters blocks 2..n (the report's reading), by a plain loop."""
    stream, h = [], x
    with torch.no_grad():
        for b in model.blocks:
            stream.append(_std(h))
            h = h + b(h)
    return max(stream[1:]) / min(stream[1:])


@pytest.mark.slow  # measured 6-16 s on 2 busy cores
@pytest.mark.parametrize("norm", [False, True])
def test_growing_stream_advice_scales_the_input_only_where_that_helps(norm):
    torch.manual_seed(0)
    model = Branches(norm=norm)
    x = 0.05 * torch.randn(128, 64, generator=torch.Generator().manual_seed(1))
    report = autoinit(model, x, mode="empirical", generator=0)
    (line,) = [w for w in report.warnings if w.startswith("the residual stream")]
    assert " grows " in line
    before, after = _stream_ratio(model, x), _stream_ratio(model, 20 * x)
    assert before > 2.0
    if norm:
        # the branches read a normalized stream: a 20x larger start flattens the stream (measured)
        assert after < 1.5
        assert "scale the embedding or input layer up" in line
    else:
        # no norm: the branches scale with the stream, a 20x larger input leaves the ratio where it was
        assert after == pytest.approx(before, rel=1e-3)
        assert "scale the embedding or input layer up" not in line
        assert "no normalization layer" in line and "scale the weights that end each branch" in line
        # and the advice given works: branch ends scaled down flatten the stream
        with torch.no_grad():
            for b in model.blocks:
                b[-1].weight.mul_(1 / 8 ** 0.5)
                b[-1].bias.mul_(1 / 8 ** 0.5)
        assert _stream_ratio(model, x) < before


def _unstable_message(fn) -> dict:
    from initlab.autoinit.moments import Stat
    from initlab.autoinit.stability import stability_rows

    (row,) = stability_rows([("act", fn, Stat(0.0, 1.0))] * 4, 1.0)
    return row


def test_no_scalar_init_text_says_repels_only_when_the_length_map_repels():
    from initlab.autoinit.stability import _GRID, _at

    # relu(x)^2: chi_1 = 4/3 and slope 2 at every scale (homogeneous): the fixed point repels
    sq = _unstable_message(lambda x: torch.relu(x) ** 2)
    slopes = [_at(lambda x: torch.relu(x) ** 2, float(g))[1] for g in _GRID]
    assert not sq["stable"] and min(slopes) > 1.01
    assert "repels at every scale" in sq["message"] and "chi_1 stays in 1.33..1.33" in sq["message"]
    # x + 100: chi_1 = q/(q + 1e4) < 0.51 and the slope equals it, below 1: the fixed point attracts
    shift = _unstable_message(lambda x: x + 100.0)
    vals = [_at(lambda x: x + 100.0, float(g)) for g in _GRID]
    assert not shift["stable"] and max(v[1] for v in vals) < 1 and max(v[0] for v in vals) < 0.95
    assert "UNSTABLE: no scalar init" in shift["message"]
    assert "repels" not in shift["message"] and "never within 0.05 of 1" in shift["message"]


class TanhBlock(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x):
        return torch.tanh(self.b(torch.tanh(self.a(x))))


def test_depth_verdict_across_blocks_counts_blocks_and_names_what_vanished():
    from initlab.diagnostics import diagnose

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Sequential(*[TanhBlock() for _ in range(6)]), nn.Linear(32, 4))
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.normal_(p, std=0.3 / 32 ** 0.5)
    diag = diagnose(model, torch.randn(64, 16, generator=torch.Generator().manual_seed(0)))
    (v,) = [v for v in diag.verdicts if v.code == "vanishing_gradients"]
    chain = [diag.layer(n) for n in v.layers]
    assert len(chain) == 6 and all("*" in s.role for s in chain)  # one role, one row per block (2 layers each)
    std_ratio = chain[-1].std / chain[0].std
    grad_ratio = chain[0].output_grad_norm / chain[-1].output_grad_norm
    assert std_ratio > 0.5 and grad_ratio < 1e-4  # only the gradient vanished (measured)
    assert "per block over 5 blocks" in v.message and "per layer" not in v.message
    assert "the back-propagated gradient vanishes with depth" in v.message
    assert "the signal vanishes" not in v.message


class Gated(nn.Module):
    """An extra layer exists only at width >= 32: it is not recorded at the smaller widths."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(8, width)
        self.extra = nn.Linear(width, width) if width >= 32 else None
        self.gate = nn.Dropout(1.0 if width == 64 else 0.0)  # in training: all zeros at width 64 only
        self.head = nn.Linear(width, 1)

    def forward(self, x):
        h = self.fc(x)
        if self.extra is not None:
            h = self.extra(h)
        return self.head(self.gate(h))


@pytest.mark.slow  # measured 6-16 s on 2 busy cores
def test_coord_check_undefined_text_says_what_was_measured():
    from initlab.coordcheck import coord_check

    res = coord_check(Gated, [16, 32, 64], input_shape=(8,), batch=8, steps=1, seeds=1, optimizer="sgd", lr=1e-3)
    widths = {m: sorted(set(res.data[res.data["module"] == m]["width"])) for m in ("extra", "gate")}
    assert widths == {"extra": [32, 64], "gate": [16, 32, 64]}
    gate_l1 = res.data[res.data["module"] == "gate"].groupby("width")["l1"].max()
    assert gate_l1[64] == 0 and gate_l1[16] > 0 and gate_l1[32] > 0
    extra, head = res.verdict("extra"), res.verdict("gate")
    assert extra.verdict == head.verdict == "undefined"
    assert "not recorded at width 16" in extra.message and "is 0" not in extra.message
    assert "mean|x| is 0 at width 64" in head.message
    assert "reason" not in res.slopes.columns


def test_saxe_orthogonal_note_clauses_follow_the_learning_times():
    from initlab.papers.saxe2014 import _orthogonal_note

    depths = ["2", "4", "8"]
    lr = {"2": 0.1, "4": 0.05, "8": 0.05}
    # the old note's case: the shallowest net is fast, the rest flat
    note = _orthogonal_note([2, 5, 5], depths, lr)
    assert "within 2x of each other from depth 4 on" in note and "only 2 epochs at its (larger) best" in note
    # the deepest net is the slow one: no "flat from ... on", no "the shallowest learns in only"
    note = _orthogonal_note([3, 3, 9], depths, lr)
    assert "from depth" not in note and "shallowest" not in note
    assert note == "Orthogonal learning times over depth are [3, 3, 9] epochs."
    # the shallowest is fastest but its learning rate is not the larger one
    note = _orthogonal_note([2, 5, 5], depths, {"2": 0.05, "4": 0.05, "8": 0.1})
    assert "only 2 epochs, so" in note and "larger" not in note


def _he_claims(t22, loss22, t30, loss30, ratio30):
    from initlab.papers._base import Claim

    return [
        Claim("signal_at_init", "", {"activation_std_ratio_last_first_30": ratio30, "predicted_xavier": 2 ** -14,
                                     "he_band": [2 ** -3.5, 2 ** 3.5]},
              bool(ratio30["xavier"] < 0.01 and 2 ** -3.5 <= ratio30["he"] <= 2 ** 3.5), ""),
        Claim("stall_at_30", "", {"epochs_to_threshold_30": t30, "final_loss_30": loss30},
              bool(t30["he"] is not None and t30["xavier"] is None), ""),
        Claim("both_at_22", "", {"epochs_to_threshold_22": t22, "final_loss_22": loss22},
              bool(t22["he"] is not None and t22["xavier"] is not None and t22["he"] <= t22["xavier"]), ""),
    ]


def test_he2015_notes_name_the_part_that_failed():
    import math

    from initlab.papers.he2015 import _annotate

    ratio = {"xavier": {"22": 1e-3, "30": 1e-4}, "he": {"22": 0.9, "30": 0.8}}
    cfg = {"epochs": 10}
    # He converges at 22 only after Xavier: the old note said Xavier "starts learning much later"
    claims = _he_claims({"he": 7, "xavier": 5}, {"he": 0.05, "xavier": 0.04}, {"he": 3, "xavier": None},
                        {"he": 0.05, "xavier": 2.3}, {"xavier": 0.5, "he": 0.8})
    _annotate(claims, ratio, cfg, {"30": [2.3] * 10})
    notes = {c.id: c.note for c in claims}
    assert "He at epoch 7, later than Xavier at epoch 5" in notes["both_at_22"]
    assert "starts learning much later" not in notes["both_at_22"]
    # the signal claim failed on Xavier's ratio (0.5), not He's: no "He's ratio ... drifts below the mean"
    assert "Xavier's last/first response ratio is 0.5, not below 0.01" in notes["signal_at_init"]
    assert "He's" not in notes["signal_at_init"]
    assert notes["stall_at_30"] == ""  # Xavier's loss never fell below 0.9 x chance: no "starts to learn"
    # Xavier at 30 moves early, not late
    claims = _he_claims({"he": 3, "xavier": 5}, {"he": 0.05, "xavier": 0.04}, {"he": 3, "xavier": None},
                        {"he": 0.05, "xavier": 1.9}, {"xavier": 1e-4, "he": 0.05})
    _annotate(claims, ratio, cfg, {"30": [2.3, 2.0] + [1.9] * 8})
    notes = {c.id: c.note for c in claims}
    assert "start to learn during the run" in notes["stall_at_30"] and "epoch 2 of 10" in notes["stall_at_30"]
    assert "late" not in notes["stall_at_30"] and 1.9 < 0.9 * math.log(10)
    assert "He's ratio is 0.05, outside [0.0884, 11.3]" in notes["signal_at_init"] and "drifts below" in notes["signal_at_init"]


def test_zhang2019_train_note_claims_he_failure_only_when_measured():
    from initlab.papers.zhang2019 import _train_note

    ok = _train_note({"initial_loss": 2.4, "diverged_step": None}, False, 2.303)
    assert "He's" not in ok and ok.startswith("one learning rate")
    div = _train_note({"initial_loss": 1.5e9, "diverged_step": 3}, True, 2.303)
    assert "He's initial loss is 1.5e+09 (chance 2.3)" in div and "diverges at step 3" in div
    stuck = _train_note({"initial_loss": 2.5, "diverged_step": None}, True, 2.303)
    assert "diverge" not in stuck and "so large" not in stuck


class _Power(nn.Module):
    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def forward(self, x):
        return torch.relu(x) ** self.k


def test_power_activation_fix_text_follows_the_measured_degree():
    from initlab.diagnostics import diagnose
    from initlab.diagnostics.verdicts import suggest_init

    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(64, 64), _Power(0.5))], nn.Linear(64, 1))
    diag = diagnose(model, torch.randn(32, 64, generator=torch.Generator().manual_seed(0)))
    hidden = diag.layers[:-1]
    assert hidden[0].activation_degree == pytest.approx(0.5, abs=1e-3)
    # sqrt(relu): the signal settles at a fixed scale over 12 layers instead of shrinking or blowing up
    stds = [s.std for s in hidden]
    assert 0.3 < stds[-1] / stds[0] < 3 and max(stds[6:]) / min(stds[6:]) < 1.5
    text = suggest_init(hidden)
    assert "grows like x^0.5 (measured)" in text
    assert "shrink or blow up" not in text and "pulled to one scale" in text


def test_fan_out_he_conv_stack_is_said_to_match_the_fan_out_scale_with_that_number():
    import re

    from initlab.diagnostics import diagnose
    from initlab.diagnostics import thresholds as T
    from initlab.diagnostics.diagnose import depth_chains
    from initlab.diagnostics.verdicts import _depth_fix

    torch.manual_seed(0)
    chs, mods = [3, 8, 16, 32, 64, 128], []
    for a, b in zip(chs, chs[1:], strict=False):
        mods += [nn.Conv2d(a, b, 3, padding=1), nn.ReLU()]
    model = nn.Sequential(*mods, nn.Flatten(), nn.Linear(128 * 16, 10))
    for m in model:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    diag = diagnose(model, torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0)))
    chain = depth_chains(diag.layers)[0]
    text = _depth_fix(chain, "")
    assert text.startswith("the weights already have the variance-preserving scale")
    now, gives = map(float, re.search(r"weight std ([\d.]+); the variance-preserving init in fan_out mode gives "
                                      r"([\d.]+)\)", text).groups())
    fan_out = sorted(s.healthy_weight_std_fan_out for s in chain)[len(chain) // 2]
    fan_in = sorted(s.healthy_weight_std for s in chain)[len(chain) // 2]
    assert gives == pytest.approx(fan_out, rel=2e-3) and abs(fan_in / fan_out - 1) > 0.3  # the modes differ here
    assert 1 / T.SCALE_MATCH <= now / gives <= T.SCALE_MATCH  # the printed numbers agree with "already"


@pytest.mark.parametrize("measured,total,pct", [(9996, 10000, "99.96%"), (9950, 10000, "99.5%"), (4, 10000, "0.04%"),
                                                (10000, 10000, "100%"), (5000, 10000, "50%"), (0, 10000, "0%")])
def test_coverage_share_of_a_partial_measurement_never_reads_100_or_0(measured, total, pct):
    from initlab.diagnostics.diagnose import Coverage

    cov = Coverage(3, 2 if measured < total else 3, total, measured, [])
    assert cov.sentence().endswith(f"({measured:,} of {total:,} parameters, {pct})")


def test_a_single_layer_model_is_not_said_to_have_hidden_units_nor_an_empty_name():
    from initlab.diagnostics import diagnose

    torch.manual_seed(0)
    diag = diagnose(nn.Linear(4, 2), torch.randn(16, 4, generator=torch.Generator().manual_seed(0)))
    (v,) = diag.verdicts
    assert v.code == "healthy" and diag.layers[0].name == ""
    assert "2 of 2 units distinct" in v.message and "hidden" not in v.message
    assert "only in the model itself (Linear)" in v.message and " in :" not in v.message
    # one hidden layer: its units are hidden units
    mlp = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    (v,) = diagnose(mlp, torch.randn(16, 4, generator=torch.Generator().manual_seed(0))).verdicts
    assert "8 of 8 hidden units distinct" in v.message


def test_glorot_top_layer_note_for_a_run_whose_mean_is_not_finite():
    from initlab.papers.glorot2010 import _top_note

    assert _top_note(0.31, 600, 64).startswith("The top layer's mean fell only to 0.31:")
    note = _top_note(None, 600, 64)  # clean() turns a NaN mean into None: the old f-string raised TypeError
    assert "not finite" in note and "fell only" not in note


def test_a_plain_stack_of_repeated_blocks_is_not_called_a_residual_stream():
    from initlab.diagnostics import diagnose

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Sequential(*[TanhBlock() for _ in range(3)]), nn.Linear(32, 4))
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    diag = diagnose(model, x)
    (v,) = diag.verdicts
    assert v.code == "healthy" and len(diag.blocks) == 3
    # no skip path: block 2's output is tanh(b(tanh(a(block 1's output)))), measured here
    with torch.no_grad():
        h = model[0](x)
        outs = []
        for b in model[1]:
            h = b(h)
            outs.append(float(h.std()))
    assert [b["output_std"] for b in diag.blocks] == pytest.approx(outs, rel=1e-5)
    assert "residual" not in v.message and f"{outs[-1]:.3g} after the last" in v.message


def test_depth_profile_of_plain_repeated_blocks_does_not_label_a_residual_stream():
    from initlab.diagnostics import diagnose
    from initlab.diagnostics.figures import depth_profile

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Sequential(*[TanhBlock() for _ in range(3)]), nn.Linear(32, 4))
    diag = diagnose(model, torch.randn(64, 16, generator=torch.Generator().manual_seed(0)))
    fig = depth_profile(diag)
    labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    labels += [ln.get_label() for ax in fig.axes for ln in ax.get_lines()]
    assert any("output of each block" in s for s in labels)
    assert not any("residual" in s for s in labels)


class Shrinking(nn.Module):
    """x = 0.5 x + block(x): the skip path halves the stream, which shrinks over the blocks."""

    def __init__(self, n: int = 8, width: int = 64) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
                                    for _ in range(n))

    def forward(self, x):
        for b in self.blocks:
            x = 0.5 * x + b(x)
        return x


@pytest.mark.slow  # measured 6-16 s on 2 busy cores
def test_a_shrinking_stream_gets_no_advice_to_scale_the_start_up():
    torch.manual_seed(0)
    model = Shrinking()
    x = 3 * torch.randn(128, 64, generator=torch.Generator().manual_seed(1))
    report = autoinit(model, x, mode="empirical", generator=0)
    stream, h = [], x
    with torch.no_grad():
        for b in model.blocks:
            stream.append(_std(h))
            h = 0.5 * h + b(h)
    assert stream[1] > 2.5 * stream[-1]  # measured: the stream shrinks
    (line,) = [w for w in report.warnings if w.startswith("the residual stream")]
    assert " grows " not in line and "scale the embedding" not in line and "up" not in line.split(";")[-1]
    assert "what multiplies the skip path" in line
