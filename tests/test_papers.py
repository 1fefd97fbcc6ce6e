"""``initlab paper``: the registry, the CLI and report files, and the papers glorot2010, he2015,
saxe2014, mishkin2016 in quick mode (each run once per module), plus the batched-trainer
extensions they need (squared loss, bias-free layers, full-batch GD, per-model learning rates)."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

from initlab import papers
from initlab._validation import ValidationError
from initlab.cli.main import main
from initlab.papers import PaperResult

MINE = ["glorot2010", "he2015", "saxe2014", "mishkin2016"]


@pytest.fixture(scope="module")
def results() -> dict[str, PaperResult]:
    return {name: papers.run(name, quick=True, seed=0) for name in MINE}


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# --------------------------------------------------------------------------- registry and CLI
def test_registry_names_and_unknown_name_did_you_mean():
    assert papers.names()[:4] == MINE and len(papers.names()) == 8
    assert papers.get("saxe2014").name == "saxe2014"
    with pytest.raises(ValidationError, match=r"unknown paper 'he2016'; did you mean 'he2015'\?"):
        papers.get("he2016")
    with pytest.raises(ValidationError, match=r"seed must be an integer in \[0, 2147483647\], got -3"):
        papers.run("saxe2014", quick=True, seed=-3)


def test_a_paper_whose_module_is_missing_is_one_line_and_left_out_of_the_list(monkeypatch, capsys):
    monkeypatch.setitem(papers._MODULES, "nosuch2099", "nosuch2099")
    with pytest.raises(ValidationError, match="paper 'nosuch2099' is not in this build"):
        papers.get("nosuch2099")
    assert main(["paper", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in MINE) and "nosuch2099" not in out
    assert "Xavier stalls at 30" in out  # the summaries are listed
    assert main(["paper", "nosuch2099", "--quick"]) == 2
    assert "not in this build" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["paper", "he2016"], "unknown paper 'he2016'; did you mean 'he2015'?"),
    (["paper", "saxe2014", "--seed", "-1"], "--seed must be an integer in [0, 2147483647], got -1"),
    (["paper", "saxe2014", "--out", "{T}/afile"], "--out '{T}/afile' is a file, not a folder"),
    (["paper"], "give a paper NAME"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, monkeypatch, capsys, argv, expected):
    (tmp_path / "afile").write_text("x")
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{T}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected.replace("{T}", str(tmp_path)) in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no initlab-out/ either


@pytest.mark.slow  # runs the four papers (module fixture, about 45 s)
def test_cli_json_equals_to_dict_and_the_files_are_written(results, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(papers, "run", lambda name, quick=False, seed=0: calls.append((name, quick, seed)) or results[name])
    out = tmp_path / "saxe"
    assert main(["paper", "saxe2014", "--quick", "--seed", "0", "--json", "--out", str(out)]) == 0
    assert calls == [("saxe2014", True, 0)]
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(results["saxe2014"].to_dict()))
    assert {p.name for p in out.iterdir()} == {"report.html", "report.md", "results.json", "saxe2014.png"}
    saved = json.loads((out / "results.json").read_text())
    assert saved["claims"] == printed["claims"] and "initlab_version" in saved
    md = (out / "report.md").read_text()
    assert "| claim | the paper says | initlab measured | criterion | reproduced |" in md
    assert "How this differs from the paper" in md and "![" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1 and "orthogonal_depth_independent" in html
    assert (out / "saxe2014.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # runs the four papers (module fixture, about 45 s)
def test_cli_table_names_each_claim_and_verdict(results, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(papers, "run", lambda name, quick=False, seed=0: results[name])
    assert main(["paper", "mishkin2016", "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    for claim in results["mishkin2016"].claims:
        assert claim.id in out
    assert f"{results['mishkin2016'].reproduced} of 3 claims reproduced" in out
    assert main(["paper", "saxe2014", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert f"{results['saxe2014'].reproduced} of 3 claims reproduced (1 by construction, not counted)" in out
    assert (tmp_path / "m" / "mishkin2016.png").exists()


@pytest.mark.slow  # runs the four papers (module fixture, about 45 s)
def test_same_seed_same_numbers(results):
    a, b = papers.run("saxe2014", quick=True, seed=0), results["saxe2014"]
    assert a.measured == b.measured and a.data == b.data
    assert [c.to_dict() for c in a.claims] == [c.to_dict() for c in b.claims]


@pytest.mark.slow  # runs the four papers (module fixture, about 45 s)
def test_result_pickles_and_displays_in_a_notebook(results):
    result = results["he2015"]
    again = pickle.loads(pickle.dumps(result))
    assert again.to_dict() == result.to_dict() and again.data == result.data
    html = result._repr_html_()
    assert all(c.id in html for c in result.claims) and "<img" in html
    assert html.count(">yes<") + html.count(">no<") == len(result.claims)


@pytest.mark.slow  # runs the four papers (module fixture, about 45 s)
def test_every_result_is_json_clean_and_claims_are_complete(results):
    for name, result in results.items():
        d = result.to_dict()
        json.dumps(d, allow_nan=False)  # no NaN / inf anywhere
        assert d["paper"] == name and d["quick"] is True and d["seed"] == 0
        assert result.setup and result.differences
        for claim in result.claims:
            assert claim.statement and claim.criterion and isinstance(claim.holds, bool)


# --------------------------------------------------------------------------- the papers
@pytest.mark.slow  # runs the four papers (module fixture, about 45 s)
def test_glorot2010(results):
    r = results["glorot2010"]
    m = r.measured
    for init in ("standard", "normalized"):
        assert 0 < m["top_layer_min_mean"][init] < 1
        lo, hi = m["first_layer_mean_range"][init]
        assert 0 < lo <= hi < 1
        assert finite(m["grad_std_ratio_first_last"][init]) and m["grad_std_ratio_first_last"][init] > 0
    # Fig. 2: the top layer's mean starts near 0.5 and drops well below it, the first stays near 0.5
    means = np.array(r.data["means"]["standard"], dtype=float)  # (epochs + 1, layers)
    assert means.shape == (26, 4) and abs(means[0, -1] - 0.5) < 0.1
    assert m["top_layer_min_mean"]["standard"] < 0.3
    # Figs. 6-7 (tanh, at init): standard shrinks by ~1/3 per layer in variance, normalized about keeps it
    assert m["grad_std_ratio_first_last"]["standard"] < 0.3 < 0.5 < m["grad_std_ratio_first_last"]["normalized"]
    holds = {c.id: c.holds for c in r.claims}
    assert holds["gradients_by_layer"] and holds["activations_by_layer"]
    # each verdict is the stated criterion applied to the measured numbers
    claims = {c.id: c for c in r.claims}
    assert claims["top_layer_saturates"].holds == (m["top_layer_min_mean"]["standard"] < 0.1)
    # the paper (Sec. 3.1): the other layers' means are above 0.5, decreasing from the output layer to the input
    below = claims["lower_layers_above_half"].measured["layer_mean_over_training_below_top"]["standard"]
    expected = np.array(r.data["means"]["standard"], dtype=float)[1:, :-1].mean(0)  # recomputed from the curves
    assert np.allclose(below, expected, rtol=1e-5) and len(below) == 3
    assert claims["lower_layers_above_half"].holds == bool(
        min(below) >= 0.49 and below[0] <= below[1] + 0.005 and below[1] <= below[2] + 0.005)
    # issue 19 item 8: the quick run ends at chance (ln 10): its training claims are inconclusive, not reproduced
    final = r.data["loss"]["standard"][-1]
    assert final > 0.95 * math.log(10)
    assert claims["top_layer_saturates"].status == claims["lower_layers_above_half"].status == "inconclusive"
    assert r.reproduced == 2 and r.tested == 2
    g = m["grad_std_ratio_first_last"]
    assert claims["gradients_by_layer"].holds == (g["standard"] < 0.5 and 0.5 <= g["normalized"] <= 2)
    hist = r.data["grad_hist"]["standard"]
    assert len(hist["counts"]) == 5 and abs(sum(hist["counts"][0]) - 1) < 0.02


@pytest.mark.slow  # runs the four papers (module fixture, about 45 s)
def test_he2015(results):
    r = results["he2015"]
    m = r.measured
    for init in ("xavier", "he"):
        for depth in ("22", "30"):
            assert finite(m["final_loss"][init][depth]) and m["final_loss"][init][depth] >= 0
            t = m["epochs_to_threshold"][init][depth]
            assert t is None or 1 <= t <= 30
        assert m["activation_std_ratio_last_first"][init]["30"] > 0
    ratio = {n: m["activation_std_ratio_last_first"][n]["30"] for n in ("xavier", "he")}
    assert ratio["xavier"] < 1e-3 and ratio["he"] > 100 * ratio["xavier"]  # 2^(-L/2) vs about steady
    # at 30 layers He trains and Xavier barely moves from chance (ln 10 = 2.30)
    assert m["final_loss"]["he"]["30"] < 0.5 < 1.5 < m["final_loss"]["xavier"]["30"]
    claims = {c.id: c for c in r.claims}
    assert claims["stall_at_30"].holds
    t = m["epochs_to_threshold"]
    assert claims["stall_at_30"].holds == (t["he"]["30"] is not None and t["xavier"]["30"] is None)
    band = 2 ** (-28 / 2 * 0.25)  # a quarter of Xavier's predicted log-shrink 2^(-28/2), either way
    assert claims["signal_at_init"].measured["he_band"] == pytest.approx([band, 1 / band], rel=1e-5)
    assert claims["signal_at_init"].holds == (ratio["xavier"] < 0.01 and band <= ratio["he"] <= 1 / band)
    both = t["he"]["22"] is not None and t["xavier"]["22"] is not None and t["he"]["22"] <= t["xavier"]["22"]
    assert claims["both_at_22"].holds == both
    assert all(c.note for c in r.claims if not c.holds)  # a claim that fails says why


@pytest.mark.slow  # runs the four papers (module fixture, about 45 s)
def test_saxe2014(results):
    r = results["saxe2014"]
    m = r.measured
    depths = ["2", "4", "8", "16", "32"]
    for init in ("orthogonal", "gaussian"):
        assert list(m["learning_time"][init]) == depths
        for d in depths:
            t = m["learning_time"][init][d]
            assert t is None or 1 <= t <= 400
            q = m["singular_value_quantiles"][init][d]
            assert len(q) == 3 and 0 < q[0] <= q[1] <= q[2]
    # an orthogonal product is an isometry; a Gaussian one spreads out with depth
    assert all(abs(v - 1) < 1e-4 for d in depths for v in m["singular_value_quantiles"]["orthogonal"][d])
    spread = [m["singular_value_quantiles"]["gaussian"][d][2] / m["singular_value_quantiles"]["gaussian"][d][0]
              for d in depths]
    assert all(a < b for a, b in zip(spread, spread[1:], strict=False))
    # every orthogonal depth learns; Gaussian gets slower with depth
    orth = [m["learning_time"]["orthogonal"][d] for d in depths]
    assert all(t is not None for t in orth)
    claims = {c.id: c for c in r.claims}
    assert claims["gaussian_slows_with_depth"].holds and claims["gaussian_spectrum_spreads"].holds
    # an orthogonal product is orthogonal: shown as such, never counted as reproduced (issue 19 item 9)
    assert claims["orthogonal_isometry"].status == "by construction" and r.tested == 3
    assert claims["orthogonal_depth_independent"].holds == (max(orth) <= 2 * min(orth))
    gauss = [400 + 1 if t is None else t for t in (m["learning_time"]["gaussian"][d] for d in depths)]
    assert claims["gaussian_slows_with_depth"].holds == (gauss[-1] >= 2 * gauss[0])


@pytest.mark.slow  # runs the four papers (module fixture, about 45 s)
def test_mishkin2016(results):
    r = results["mishkin2016"]
    m = r.measured
    after = m["layer_variance_after"]
    assert len(after) == 13 and len(m["iterations"]) == 13  # 12 hidden layers + the output layer
    assert all(isinstance(k, int) and 1 <= k <= 10 for k in m["iterations"])
    assert set(m["final_loss"]) == {"lsuv", "orthogonal", "he"} and all(finite(v) for v in m["final_loss"].values())
    assert m["trainer_matches_lsuv_draw"] is True
    # before LSUV the orthonormal ReLU net loses variance layer by layer; after, every layer is at 1
    before = m["layer_variance_before"]
    assert before[-1] < 0.1 * before[0]
    claims = {c.id: c for c in r.claims}
    assert claims["unit_variance"].holds and claims["few_iterations"].holds
    assert claims["unit_variance"].holds == all(abs(v - 1) < 0.1 for v in after)
    assert claims["few_iterations"].holds == (max(m["iterations"]) <= 5)
    fl = m["final_loss"]
    assert claims["trains_as_well"].holds == (fl["lsuv"] <= 1.1 * min(fl["orthogonal"], fl["he"]))


@pytest.mark.slow  # runs the four papers (module fixture, about 45 s)
def test_figures_are_titled_and_labelled(results):
    for name, result in results.items():
        figs = papers.get(name).figures(result)
        assert name in figs
        for fig in figs.values():
            assert fig.get_suptitle()
            for ax in fig.axes:
                assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


# --------------------------------------------------------------------------- trainer extensions
def _reference_linear(sizes, init, seed, X, Y, lr, epochs):
    """Full-batch GD on squared error of a bias-free linear MLP, by autograd."""
    from initlab.initializers import apply_init
    from initlab.models import MLP

    model = MLP(sizes, "linear", "linear")
    for layer in model.linears:
        layer.bias = None
    apply_init(model, init, None, generator=seed)
    params = list(model.parameters())
    losses = []
    for _ in range(epochs):  # plain gradient descent, written out (torch.optim's first step imports a lot)
        loss = ((model(X) - Y) ** 2).mean()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=False):
                p.sub_(lr * g)
        losses.append(loss.item())
    return np.array(losses)


def test_batched_squared_loss_full_batch_no_bias_per_model_lr_matches_autograd():
    from initlab.training.batched import BatchedTrainer

    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(40, 5, generator=g), torch.randn(40, 3, generator=g)
    sizes, inits, seeds, lrs = [5, 6, 6, 3], ["orthogonal", "lecun_normal", "orthogonal"], [1, 2, 3], [0.05, 0.02, 0.1]
    trainer = BatchedTrainer(sizes, "linear", inits, init_seeds=seeds, optimizer="sgd", learning_rate=lrs, epochs=15,
                             batch_size=None, output="linear", loss="mse", bias=False).fit(X, Y)
    for i in range(3):
        expected = _reference_linear(sizes, inits[i], seeds[i], X, Y, lrs[i], 15)
        np.testing.assert_allclose(trainer.history_["loss"][i], expected, rtol=1e-5)
    assert np.isnan(trainer.history_["accuracy"]).all()  # no classes under squared error
    assert all(float(layer.bias.detach().abs().max()) == 0 for layer in trainer.to_model(0).linears)
    loss, _ = trainer.evaluate(X, Y)
    assert loss.shape == (3,) and (loss < trainer.history_["loss"][:, 0]).all()


def test_per_model_learning_rates_need_sgd_and_one_per_model():
    from initlab.training.batched import BatchedTrainer

    with pytest.raises(ValidationError, match="needs optimizer 'sgd'"):
        BatchedTrainer([2, 3, 1], "relu", ["he_normal"] * 2, optimizer="adam", learning_rate=[0.1, 0.2])
    with pytest.raises(ValidationError, match=r"learning_rate needs one entry per model \(2\), got 3"):
        BatchedTrainer([2, 3, 1], "relu", ["he_normal"] * 2, optimizer="sgd", learning_rate=[0.1, 0.2, 0.3])
    with pytest.raises(ValidationError, match="unknown loss 'mae'"):
        BatchedTrainer([2, 3, 1], "relu", ["he_normal"], loss="mae")
