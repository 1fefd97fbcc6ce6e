"""coord-check: muP's width check. SP with Adam grows with width, muP stays flat; exact slopes on
power laws; the data frame against an independent recomputation; the CLI and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import initlab
from initlab.cli.main import main
from initlab.coordcheck import FLAT_SLOPE, _optimizer, _shapes, coord_check, load_width_factory

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "coordcheck_mlp.py"
WIDTHS = [64, 128, 256, 512, 1024]  # the README's run
HIDDEN = ["2", "3", "4", "5"]  # the (width x width) layers and their ReLUs
LOGITS = "6"


@pytest.fixture(scope="module")
def factories():
    return {name: load_width_factory(f"{EXAMPLE}:{name}") for name in ("sp", "mup")}


@pytest.fixture(scope="module")
def runs(factories):
    kw = dict(input_shape=(32,), steps=5, seeds=3, optimizer="adam", lr=1e-3)
    return {
        "sp": coord_check(factories["sp"], WIDTHS, **kw),
        "mup": coord_check(factories["mup"], WIDTHS, lr_scaling="mup", **kw),
        # muP's readout alone, without muP's learning rates: the hidden layers still blow up
        "readout_only": coord_check(factories["mup"], WIDTHS, **kw),
    }


@pytest.mark.slow  # the README's run: 5 widths up to 1024 (module fixture, 93 s on 2 busy cores)
def test_standard_parametrization_with_adam_grows_with_width(runs):
    sp = runs["sp"]
    v = {x.module: x for x in sp.verdicts}
    assert v[LOGITS].verdict == "grows" and v[LOGITS].slope > 0.5  # the logits: one Adam update of a w-wide sum
    assert v["5"].verdict == "grows" and v["4"].verdict == "grows"
    assert v["0"].verdict == "flat"  # the input layer sums over 32 fixed features: its update does not scale
    # the growth is the training's: at step 1 (initialization) nothing in the hidden layers grows
    init = sp.slopes[sp.slopes["step"] == 1].set_index("module")["slope"]
    assert (init[HIDDEN].abs() < FLAT_SLOPE).all()
    # and it builds up over the steps
    logits = sp.slopes[sp.slopes["module"] == LOGITS]["slope"].to_numpy()
    assert logits[-1] > logits[1] > logits[0]


@pytest.mark.slow  # the README's run: 5 widths up to 1024 (module fixture, 93 s on 2 busy cores)
def test_mup_readout_and_learning_rates_stay_flat(runs):
    mup = runs["mup"]
    assert [v.verdict for v in mup.verdicts] == ["flat"] * 7
    assert max(abs(v.slope) for v in mup.verdicts) < 0.1
    # the model trained: the logits left their zero start and the last hidden layer moved
    means = mup.data.groupby(["module", "step"])["l1"].mean()
    assert means[(LOGITS, 1)] == 0 and means[(LOGITS, 5)] > 1e-3
    at_init = mup.slopes.query("step == 1").set_index("module")
    assert np.isnan(at_init.loc[LOGITS, "slope"]) and at_init.loc[LOGITS, "verdict"] == "undefined"  # log 0
    assert means[("5", 5)] > 1.05 * means[("5", 1)]
    # the readout without muP's learning rates is not enough
    readout_only = {v.module: v.verdict for v in runs["readout_only"].verdicts}
    assert readout_only["4"] == readout_only["5"] == readout_only[LOGITS] == "grows"


@pytest.mark.slow  # the README's run: 5 widths up to 1024 (module fixture, 93 s on 2 busy cores)
def test_data_frame_matches_an_independent_recomputation(runs, factories):
    sp = runs["sp"]
    assert list(sp.data.columns) == ["width", "seed", "step", "module", "l1"]
    assert len(sp.data) == len(WIDTHS) * 3 * 5 * 7
    assert sp.modules == [str(i) for i in range(7)]
    # step 1 is the initialization: mean |x| of the first layer's output, model seeded with seed + i
    torch.manual_seed(1)
    model = factories["sp"](128)
    x = torch.randn((64, 32), generator=torch.Generator().manual_seed(0))
    expected = float(model[0](x).detach().abs().mean())
    got = sp.data.query("width == 128 and seed == 1 and step == 1 and module == '0'")["l1"]
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # sp and mup share the body and its draws: identical before the first update
    a = sp.data.query("step == 1 and module != @LOGITS")["l1"].to_numpy()
    b = runs["mup"].data.query("step == 1 and module != @LOGITS")["l1"].to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6)
    # slope = least-squares fit of log(mean over seeds) on log(width)
    mean = sp.data.query("step == 5 and module == @LOGITS").groupby("width")["l1"].mean()
    slope = np.polyfit(np.log(mean.index.to_numpy(float)), np.log(mean.to_numpy()), 1)[0]
    assert sp.verdict(LOGITS).slope == pytest.approx(slope)
    data, verdicts = sp  # unpacks as the issue asks: a data frame and the verdicts
    assert data is sp.data and verdicts is sp.verdicts


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def _power_laws(width: int) -> nn.Module:
    """A width-independent Linear, then its output times width^-1 and times width^0.5."""
    return nn.Sequential(nn.Linear(4, 3), _Scale(1.0 / width), _Scale(width ** 0.5))


def test_exact_power_laws_give_their_exponents():
    # at initialization (step 1) every width runs the same Linear on the same batch: exact exponents
    result = coord_check(_power_laws, [8, 16, 32, 64], input_shape=(4,), steps=1, seeds=2, optimizer="sgd")
    v = {x.module: x for x in result.verdicts}
    assert v["0"].slope == pytest.approx(0.0, abs=1e-5) and v["0"].verdict == "flat"
    assert v["1"].slope == pytest.approx(-1.0, abs=1e-5) and v["1"].verdict == "shrinks"
    assert v["2"].slope == pytest.approx(-0.5, abs=1e-5) and v["2"].verdict == "shrinks"
    assert v["2"].slope_sd == pytest.approx(0.0, abs=1e-5)  # both seeds: the same exponent
    assert v["2"].kind == "_Scale" and v["0"].kind == "Linear"
    assert result.threshold == FLAT_SLOPE
    strict = coord_check(_power_laws, [8, 16, 32, 64], input_shape=(4,), steps=1, seeds=1, threshold=0.6)
    assert strict.verdict("2").verdict == "flat" and strict.verdict("1").verdict == "shrinks"
    # after updates the Linear differs per width (the loss sees the scaled output), the factor stays exact
    trained = coord_check(_power_laws, [8, 16, 32, 64], input_shape=(4,), steps=3, seeds=1, optimizer="sgd").slopes
    by = trained.pivot(index="step", columns="module", values="slope")
    assert abs(by.loc[3, "0"]) > 1e-3
    np.testing.assert_allclose(by["1"] - by["0"], -1.0, atol=1e-5)


def test_chosen_modules_and_python_api_errors(factories):
    result = coord_check(factories["sp"], (16, 32, 64), input_shape=(32,), steps=1, seeds=1, modules=["2", "6"])
    assert result.modules == ["2", "6"] and len(result.data) == 3 * 2
    with pytest.raises(initlab.ValidationError, match=r"unknown module '7' \(allowed: 0, 1, 2, 3, 4, 5, 6\)"):
        coord_check(factories["sp"], (16, 32, 64), input_shape=(32,), steps=1, seeds=1, modules=["7"])
    with pytest.raises(initlab.ValidationError, match="widths must be positive integers"):
        coord_check(factories["sp"], [16.0, 32, 64], input_shape=(32,))
    with pytest.raises(initlab.ValidationError, match="seeds must be an integer in \\[1, 100\\], got 0"):
        coord_check(factories["sp"], [16, 32, 64], input_shape=(32,), seeds=0)
    with pytest.raises(initlab.ValidationError, match="unknown loss 'mae'"):
        coord_check(factories["sp"], [16, 32, 64], input_shape=(32,), loss="mae")
    with pytest.raises(initlab.ValidationError, match="give --input-shape"):
        coord_check(factories["sp"], [16, 32, 64])
    with pytest.raises(initlab.ValidationError, match="unknown module 'x'"):
        result.verdict("x")


@pytest.mark.slow  # 6 s
def test_same_seed_same_numbers_and_global_rng_untouched(factories):
    state = torch.get_rng_state()
    kw = dict(input_shape=(32,), steps=2, seeds=2)
    a = coord_check(factories["sp"], [16, 32, 64], seed=3, **kw).data
    b = coord_check(factories["sp"], [16, 32, 64], seed=3, **kw).data
    c = coord_check(factories["sp"], [16, 32, 64], seed=4, **kw).data
    assert a.equals(b) and not a["l1"].equals(c["l1"])
    assert torch.equal(torch.get_rng_state(), state)


def test_mup_learning_rates_follow_muadam_and_musgd(factories):
    torch.manual_seed(0)
    base = _shapes(factories["mup"](64))
    model = factories["mup"](256)  # width multiplier 4
    names = {id(p): n for n, p in model.named_parameters()}

    def lrs(optimizer):
        opt = _optimizer(model, optimizer, 1.0, "mup", base)
        return {names[id(p)]: g["lr"] for g in opt.param_groups for p in g["params"]}

    adam = lrs("adam")  # MuAdam: matrix-like (hidden) weights lr / 4, the rest lr
    assert adam == {"0.weight": 1, "0.bias": 1, "2.weight": 0.25, "2.bias": 1, "4.weight": 0.25, "4.bias": 1,
                    "6.weight": 1, "6.bias": 1}
    sgd = lrs("sgd")  # MuSGD: vector-like (input weights, biases, readout weight) lr * 4, hidden lr * 4/4
    assert sgd == {"0.weight": 4, "0.bias": 4, "2.weight": 1, "2.bias": 4, "4.weight": 1, "4.bias": 4,
                   "6.weight": 4, "6.bias": 1}


@pytest.mark.slow  # the README's run: 5 widths up to 1024 (module fixture, 93 s on 2 busy cores)
def test_figure_and_files(runs, tmp_path):
    sp = runs["sp"]
    fig = sp.figure()
    axes = fig.axes
    assert len(axes) == 5 and [a.get_title() for a in axes] == ["step 1 (init)", "step 2", "step 3", "step 4", "step 5"]
    assert all(a.get_xscale() == "log" and a.get_yscale() == "log" for a in axes)
    assert all(len(a.get_lines()) == 7 for a in axes)
    assert axes[0].get_ylabel() and axes[0].get_xlabel() == "width" and fig._suptitle.get_text()
    labels = [t.get_text() for t in axes[-1].get_legend().get_texts()]
    assert labels[6] == f"6 Linear: grows (w^{sp.verdict('6').slope:.2f})"
    paths = sp.save(tmp_path / "cc")
    assert {p.name for p in paths.values()} == {"coord_check.csv", "coord_check.json", "coord_check.png"}
    assert paths["png"].stat().st_size > 10_000
    saved = json.loads(paths["json"].read_text())
    assert [v["verdict"] for v in saved["verdicts"]] == [v.verdict for v in sp.verdicts]
    assert saved["settings"]["optimizer"] == "adam" and saved["widths"] == WIDTHS
    assert len(saved["slopes"]) == 7 * 5 and len(saved["slopes"][0]["l1_by_width"]) == 5
    # many steps: at most 6 panels, first and last kept
    from initlab.coordcheck import _panel_steps

    assert _panel_steps(20) == [1, 5, 9, 12, 16, 20]


def test_lazy_top_level_name():
    assert initlab.coord_check is coord_check


# -- CLI -------------------------------------------------------------------------------------------

def test_cli_prints_the_verdict_table_and_writes_files(tmp_path, capsys):
    out = tmp_path / "cc"
    code = main(["coord-check", f"{EXAMPLE}:sp", "--widths", "32,64,128", "--input-shape", "32", "--steps", "2",
                 "--seeds", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "module" in text and "slope" in text and "verdict" in text and "MuReadout" not in text
    assert {p.name for p in out.iterdir()} == {"coord_check.csv", "coord_check.json", "coord_check.png"}
    code = main(["coord-check", f"{EXAMPLE}:mup", "--widths", "32,64,128", "--input-shape", "32", "--steps", "2",
                 "--seeds", "1", "--lr-scaling", "mup", "--optimizer", "SGD", "--lr", "0.05", "--json",
                 "--out", str(out)])
    saved = json.loads(capsys.readouterr().out)
    assert code == 0 and saved["settings"]["optimizer"] == "sgd" and saved["settings"]["lr_scaling"] == "mup"
    assert saved["settings"]["base_width"] == 32 and [v["module"] for v in saved["verdicts"]][-1] == "6"


NO_WIDTH = "import torch\ndef make():\n    return torch.nn.Linear(4, 2)\ndef wide(width):\n    return torch.nn.Linear(4, width)\n"

BAD = [
    (["{T}/m.py:make"], "factory 'make' takes no width parameter: coord-check builds the model as make(width)"),
    (["{T}/m.py:wide", "--optimizer", "adma"], "unknown optimizer 'adma'; did you mean 'adam'?"),
    (["{T}/m.py:wide", "--widths", "8,-16,32"], "widths must be positive integers separated by commas"),
    (["{T}/m.py:wide", "--widths", "8,x,32"], "widths must be positive integers separated by commas"),
    (["{T}/m.py:wide", "--widths", "8,16"], "widths needs at least 3 widths to fit a slope, got 2"),
    (["{T}/m.py:wide", "--widths", "8,16,16"], "widths must be distinct"),
    (["{T}/m.py:wide", "--steps", "0"], "steps must be an integer in [1, 100], got 0"),
    (["{T}/m.py:wide", "--steps", "1000"], "steps must be an integer in [1, 100], got 1000"),
    (["{T}/m.py:wide", "--lr-scaling", "mu"], "unknown lr-scaling 'mu'; did you mean 'mup'?"),
    (["{T}/m.py:wide", "--lr", "0"], "lr must be > 0.0"),
    (["{T}/nope.py:wide"], "model file '{T}/nope.py' not found"),
    (["{T}/m.py:wid"], "factory 'wid' not found in '{T}/m.py'; did you mean 'wide'?"),
    (["{T}/m.py:wide", "--input-shape", "5"], "the model rejected input of shape (64, 5)"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[m[:30] for _, m in BAD])
def test_cli_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, argv, message):
    (tmp_path / "m.py").write_text(NO_WIDTH)
    args = ["coord-check", *[a.replace("{T}", str(tmp_path)) for a in argv], "--out", str(tmp_path / "out")]
    if "--input-shape" not in args:
        args += ["--input-shape", "4"]
    if "--widths" not in args:
        args += ["--widths", "2,3,4"]
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert message.replace("{T}", str(tmp_path)) in " ".join(err.split()), err
    assert not (tmp_path / "out").exists()


# ---- issue 19 item 10: each slope gets an interval over seeds ---------------------------------------

def _per_seed_interval(result, module: str) -> tuple[float, float, float]:
    """(slope of the mean, lo, hi) recomputed from the data frame: Student-t over per-seed least-squares slopes."""
    from scipy import stats

    at = result.data[(result.data["module"] == module) & (result.data["step"] == result.steps)]
    mean = at.groupby("width")["l1"].mean()
    slope = np.polyfit(np.log(mean.index.to_numpy(float)), np.log(mean.to_numpy(float)), 1)[0]
    per_seed = [np.polyfit(np.log(g["width"].to_numpy(float)), np.log(g["l1"].to_numpy(float)), 1)[0]
                for _, g in at.groupby("seed")]
    half = stats.t.ppf(0.95, len(per_seed) - 1) * np.std(per_seed, ddof=1) / np.sqrt(len(per_seed))
    return slope, slope - half, slope + half


def test_narrow_widths_are_undetermined_not_shrinking(factories):
    """Widths 60/64/68: the seed-to-seed spread outweighs any slope; no module may read "shrinks"."""
    result = coord_check(factories["sp"], [60, 64, 68], input_shape=(32,), steps=5, seeds=3, optimizer="adam", lr=1e-3)
    assert [w for w in result.warnings if "span only x1.13 (60..68), less than x4" in w]
    verdicts = {v.module: v for v in result.verdicts}
    assert "shrinks" not in {v.verdict for v in verdicts.values()}
    for module, v in verdicts.items():
        slope, lo, hi = _per_seed_interval(result, module)
        assert (v.slope, v.slope_lo, v.slope_hi) == pytest.approx((slope, lo, hi), rel=1e-6, abs=1e-9)
        straddles = lo < FLAT_SLOPE <= hi or lo <= -FLAT_SLOPE < hi
        assert (v.verdict == "undetermined") == straddles, (module, lo, hi, v.verdict)
    assert verdicts[LOGITS].verdict == "undetermined"
    saved = result.to_dict()
    assert saved["warnings"] == result.warnings and len(saved["verdicts"][0]["slope_interval"]) == 2


class _Sum(nn.Module):
    """A Linear(8, width), then the plain sum of its width outputs: mean|x| grows like width^0.5."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.inp = nn.Linear(8, width)
        self.out = nn.Linear(width, 1, bias=False)
        with torch.no_grad():
            self.out.weight.fill_(1.0)

    def forward(self, x):
        return self.out(self.inp(x))


def test_a_clear_growth_reads_grows_with_an_interval_beyond_the_threshold():
    result = coord_check(_Sum, [16, 64, 256, 1024], input_shape=(8,), batch=256, steps=1, seeds=4, optimizer="sgd")
    assert result.warnings == []
    v = result.verdict("out")
    slope, lo, hi = _per_seed_interval(result, "out")
    assert v.slope == pytest.approx(0.5, abs=0.1) and (v.slope_lo, v.slope_hi) == pytest.approx((lo, hi))
    assert lo > FLAT_SLOPE and v.verdict == "grows"
    assert result.verdict("inp").verdict == "flat" and abs(result.verdict("inp").slope_hi) < FLAT_SLOPE
    assert "interval" in v.message and v.message.endswith("(grows)")
    one = coord_check(_Sum, [16, 64, 256, 1024], input_shape=(8,), batch=256, steps=1, seeds=1, optimizer="sgd")
    assert any(w.startswith("one seed: no interval") for w in one.warnings) and np.isnan(one.verdict("out").slope_lo)
