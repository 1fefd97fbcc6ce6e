"""Papers schoenholz2017, hanin2018, zhao2022, zhang2019 (quick runs), the ZerO initializer and Fixup."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

import initlab.papers as papers
from initlab import initializers
from initlab._validation import ValidationError
from initlab.initializers.fixup import fixup_init, fixup_scale, he_residual_init
from initlab.initializers.zero_init import zero_matrix
from initlab.models.residual import ResidualMLP
from initlab.papers import hanin2018, schoenholz2017, zhao2022


def _run(name: str) -> papers.PaperResult:
    return papers.run(name, quick=True, seed=0)


@pytest.fixture(scope="module")
def schoenholz():
    return _run("schoenholz2017")


@pytest.fixture(scope="module")
def hanin():
    return _run("hanin2018")


@pytest.fixture(scope="module")
def zhao():
    return _run("zhao2022")


@pytest.fixture(scope="module")
def zhang():
    return _run("zhang2019")


def _claims(result) -> dict:
    return {c.id: c for c in result.claims}


def _check_result(result, name: str, keys: set[str], tmp_path) -> None:
    assert result.name == name and result.quick and result.seed == 0
    assert keys <= set(result.measured)
    assert result.setup and result.differences and result.title and result.citation
    for claim in result.claims:
        assert claim.criterion and claim.statement and isinstance(claim.holds, bool)
    text = json.dumps(result.to_dict(), allow_nan=False)  # strict JSON: no NaN/inf anywhere
    assert json.loads(text)["paper"] == name
    again = pickle.loads(pickle.dumps(result))
    assert again.to_dict() == result.to_dict()
    figures = papers.get(name).figures(result)
    assert figures
    from initlab.plots.style import save

    for stem, fig in figures.items():
        assert all(ax.get_title() or ax.get_label() == "<colorbar>" for ax in fig.axes if ax.get_xlabel())
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes if ax.get_label() != "<colorbar>")
        path = save(fig, tmp_path / f"{name}-{stem}.png")
        assert path.stat().st_size > 10_000


# ------------------------------------------------------------------ schoenholz2017
@pytest.mark.slow  # a quick paper run (module fixture)
def test_schoenholz_grid_and_fractions(schoenholz, tmp_path):
    _check_result(schoenholz, "schoenholz2017", {"trainable_fraction_inside", "trainable_fraction_outside", "grid"},
                  tmp_path)
    grid = schoenholz.measured["grid"]
    acc = np.array(grid["accuracy"], dtype=float)
    assert acc.shape == (len(grid["depths"]), len(grid["sigma_w2"]))
    assert ((acc >= 0) & (acc <= 1)).all()
    assert (acc[0] >= 0.5).all()  # 10 tanh layers train at every sigma_w2 in the budget
    # 6 xi_c recomputed from the theory: finite away from criticality, largest near sigma_w2 = 1.76
    six = np.array([math.inf if v is None else v for v in grid["six_xi_c"]], dtype=float)
    for s, v in zip(grid["sigma_w2"], six, strict=False):
        from initlab.theory import MeanField

        assert v == pytest.approx(6 * MeanField("tanh", s, 0.05).xi_c, rel=1e-4)
    assert np.argmax(six) == grid["sigma_w2"].index(1.75)
    # the fractions, recomputed from the grid by the stated criterion
    inside = np.array(grid["depths"])[:, None] <= six[None, :]
    trained = acc >= schoenholz2017.TRAINED
    assert schoenholz.measured["trainable_fraction_inside"] == pytest.approx(trained[inside].mean(), abs=1e-6)
    assert schoenholz.measured["trainable_fraction_outside"] == pytest.approx(trained[~inside].mean(), abs=1e-6)
    claim = _claims(schoenholz)["trainable_within_6_xi_c"]
    assert claim.holds == (trained[inside].mean() >= 0.75 and trained[~inside].mean() <= 0.25)
    assert trained[inside].mean() > trained[~inside].mean() + 0.4  # robust at this seed: the curve separates
    deep = _claims(schoenholz)["deepest_near_criticality"]
    assert deep.holds == schoenholz2017._deepest_is_near_critical(deep.measured["deepest_trained_depth"])


# ------------------------------------------------------------------ hanin2018
@pytest.mark.slow  # a quick paper run (module fixture)
def test_hanin_ratios_against_the_exact_law(hanin, tmp_path):
    _check_result(hanin, "hanin2018", {"measured_ratio", "predicted_ratio"}, tmp_path)
    measured, predicted = hanin.measured["measured_ratio"], hanin.measured["predicted_ratio"]
    assert set(measured) == set(predicted) == set(hanin2018.SCHEDULES)
    for name, widths in hanin2018.SCHEDULES.items():
        expected = np.cumprod([1 + 5 / n for n in widths])  # prod (1 + 5/n_j), recomputed here
        assert np.allclose(predicted[name], expected, rtol=1e-5)
        assert len(measured[name]) == len(widths)
        assert measured[name][-1] > measured[name][0] > 1.0  # the spread grows with depth
        assert abs(measured[name][-1] / expected[-1] - 1) < 0.25
    claims = _claims(hanin)
    spread = claims["spread_matches_prediction"].measured
    lo, hi = spread["interval_95"]
    assert lo < spread["fitted_constant"] < hi and lo < 5 < hi
    assert claims["spread_matches_prediction"].holds == (4 < lo and hi < 6)
    dev = claims["mean_length_preserved"].measured["mean_ratio_max_abs_deviation"]
    assert claims["mean_length_preserved"].holds == (dev <= hanin2018.MEAN_TOL)
    assert all(c.holds for c in hanin.claims)  # robust: 8000 nets, predicted ratios <= 3.3
    halving = claims["half_variance_halves_the_mean"].measured["log2_mean_ratio_at_depth_lecun"]
    assert claims["half_variance_halves_the_mean"].holds == (abs(halving + 10) <= hanin2018.HALVING_TOL)


def test_hanin_lengths_are_exactly_one_step_of_the_law():
    """One layer: E[M_1] = M_0 and E[M_1^2]/E[M_1]^2 = 1 + 5/n, within sampling error."""
    x = torch.ones(16)
    M = hanin2018.lengths([50], x, 20000, torch.Generator().manual_seed(1))[:, 0]
    assert M.mean() == pytest.approx(1.0, abs=0.02)
    assert (M**2).mean() / M.mean() ** 2 == pytest.approx(1 + 5 / 50, rel=0.02)


# ------------------------------------------------------------------ zhao2022
@pytest.mark.slow  # a quick paper run (module fixture)
def test_zhao_zero_trains_and_is_deterministic(zhao, tmp_path):
    _check_result(zhao, "zhao2022", {"final_accuracy", "seed_identical"}, tmp_path)
    acc = zhao.measured["final_accuracy"]
    assert set(acc) == {"moons 2-10-1", "digits 64-128-128-10"}
    for by_init in acc.values():
        assert set(by_init) == set(zhao2022.INITS)
    assert acc["moons 2-10-1"]["zeros"] == 0.5  # 50 points of each moon: the constant prediction
    assert acc["digits 64-128-128-10"]["zeros"] < 0.15
    assert acc["digits 64-128-128-10"]["hadamard_identity"] > 0.9
    assert zhao.measured["seed_identical"] is True
    claims = _claims(zhao)
    gap = claims["zero_trains_as_well_as_random"].measured["gap"]
    for setup, g in gap.items():
        random_mean = np.mean([acc[setup][i] for i in zhao2022.RANDOM])
        assert g == pytest.approx(acc[setup]["hadamard_identity"] - random_mean, abs=1e-5)
    assert claims["zero_trains_as_well_as_random"].holds == all(g >= -zhao2022.AS_WELL_TOL for g in gap.values())
    runs = claims["zero_is_deterministic"].measured["runs"]
    assert all(not r["he_normal_params_equal"] for r in runs.values())  # the comparison can tell seeds apart
    assert all(c.holds for c in zhao.claims)


# ------------------------------------------------------------------ zhang2019
@pytest.mark.slow  # a quick paper run (module fixture)
def test_zhang_he_explodes_fixup_trains(zhang, tmp_path):
    _check_result(zhang, "zhang2019", {"output_std_at_init", "final_loss"}, tmp_path)
    std = zhang.measured["output_std_at_init"]
    he = [std["he"][d] for d in std["he"]]
    fix = [std["fixup"][d] for d in std["fixup"]]
    assert all(b > a for a, b in zip(he, he[1:], strict=False))  # grows with every step in depth
    assert np.allclose(fix, fix[0], rtol=1e-6)  # every Fixup block is the identity at init
    final = zhang.measured["final_loss"]
    assert final["he"] is None  # He diverged (non-finite loss)
    assert final["fixup"] < math.log(10) / 2
    claims = _claims(zhang)
    growth = claims["he_explodes_at_init"].measured["std_growth_first_to_deepest"]
    assert growth["he"] == pytest.approx(he[-1] / he[0], rel=1e-4)
    assert claims["he_explodes_at_init"].holds == (growth["he"] >= 1e3)
    fixup = claims["fixup_keeps_one_block_scale"]
    assert fixup.holds and fixup.status == "by construction"  # identity blocks: shown, not counted
    assert all(c.holds for c in zhang.claims) and zhang.tested == 2


@pytest.mark.slow  # a quick paper run (module fixture)
def test_same_seed_same_numbers(zhang):
    again = papers.run("zhang2019", quick=True, seed=0)
    assert again.to_dict() | {"elapsed_s": 0} == zhang.to_dict() | {"elapsed_s": 0}
    assert again.data == zhang.data  # the per-step losses too


# ------------------------------------------------------------------ ZerO
def test_zero_resolves_by_its_names_and_never_as_zeros():
    assert initializers.get("ZerO").name == "hadamard_identity"
    assert initializers.get("hadamard_identity").name == "hadamard_identity"
    assert initializers.get("zero").name == "zeros" and initializers.get("Zeros").name == "zeros"
    scheme = next(s for s in initializers.catalog() if s.name == "hadamard_identity")
    assert scheme.kind == "constant" and "ZerO" in scheme.aliases
    assert "Zhao et al., 2022" in scheme.reference and "H_m" in scheme.formula
    with pytest.raises(ValidationError, match="has no parameter 'seed'"):
        initializers.get("ZerO", seed=1)


def test_zero_is_deterministic_and_identity_on_square():
    init = initializers.get("ZerO")
    a = init(torch.empty(32, 32), torch.Generator().manual_seed(0))
    b = init(torch.randn(32, 32), torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(a, torch.eye(32))
    assert torch.equal(init(torch.empty(5, 9)), torch.eye(5, 9))  # narrowing: partial identity
    assert torch.equal(init(torch.randn(7)), torch.zeros(7))  # a bias
    conv = init(torch.randn(4, 4, 3, 3))
    assert torch.equal(conv[:, :, 1, 1], torch.eye(4)) and conv.abs().sum() == 4
    stacked = init(torch.randn(3, 6, 6), batch_dims=1)
    assert torch.equal(stacked, torch.eye(6).expand(3, 6, 6))


def _sylvester(m: int) -> np.ndarray:
    h = np.ones((1, 1))
    for _ in range(m):
        h = np.kron(np.array([[1, 1], [1, -1]]), h)
    return h


@pytest.mark.parametrize("n_out,n_in", [(16, 8), (10, 3), (64, 2), (128, 64)])
def test_zero_expansion_is_a_scaled_hadamard_block(n_out, n_in):
    w = initializers.get("ZerO")(torch.empty(n_out, n_in)).double().numpy()
    m = math.ceil(math.log2(n_out))
    c = 2 ** (-(m - 1) / 2)
    assert np.array_equal(np.sign(w), _sylvester(m)[:n_out, :n_in])  # H_m by Kronecker products, independently
    assert np.allclose(np.abs(w), c, rtol=1e-7, atol=0)  # float32 weights: c to float32 precision
    if n_out == 2**m:  # full columns of H_m: orthogonal, each of squared norm 2^m c^2 = 2
        assert np.allclose(w.T @ w, 2 * np.eye(n_in))
    assert np.allclose(zero_matrix(n_out, n_in).numpy(), w, rtol=1e-7, atol=0)


@pytest.mark.slow  # a quick paper run (module fixture)
def test_zero_breaks_the_symmetry_zeros_keeps(zhao):
    distinct = _claims(zhao)["zero_trains_as_well_as_random"].measured["distinct_first_layer_units_after_training"]
    for setup, units in (("moons 2-10-1", 10), ("digits 64-128-128-10", 128)):
        assert distinct[setup]["zeros"] == 1  # every hidden unit identical after training
        assert distinct[setup]["he_normal"] == units
        assert distinct[setup]["hadamard_identity"] > 2  # more than the Hadamard block's distinct rows at init


# ------------------------------------------------------------------ Fixup
def test_fixup_zeroes_branch_ends_and_classifier():
    model = fixup_init(ResidualMLP(16, 64, 8, 10), generator=0)
    for block in model.blocks:
        assert torch.count_nonzero(block.linears[-1].weight) == 0
        assert block.scale.item() == 1.0 and block.bias_out.item() == 0.0
        assert all(p.item() == 0.0 for p in (*block.bias_in, *block.bias_act))
    assert torch.count_nonzero(model.head.weight) == 0 and torch.count_nonzero(model.head.bias) == 0
    x = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.features(x), torch.relu(model.stem(x)))  # every block starts as the identity
        assert torch.count_nonzero(model(x)) == 0


@pytest.mark.parametrize("blocks,branch_layers", [(16, 2), (16, 3), (4, 2)])
def test_fixup_scales_branch_layers_by_l_to_the_minus_1_over_2m_minus_2(blocks, branch_layers):
    model = fixup_init(ResidualMLP(8, 128, blocks, 3, branch_layers), generator=0)
    weights = torch.cat([layer.weight.reshape(-1) for b in model.blocks for layer in b.linears[:-1]])
    he_std = math.sqrt(2 / 128)
    expected = blocks ** (-1 / (2 * branch_layers - 2))
    assert fixup_scale(blocks, branch_layers) == pytest.approx(expected)
    assert weights.std().item() / he_std == pytest.approx(expected, rel=0.02)
    assert model.stem.weight.std().item() == pytest.approx(math.sqrt(2 / 8), rel=0.1)  # the stem: plain He


def test_fixup_is_reproducible_and_checks_its_model():
    a, b = (fixup_init(ResidualMLP(8, 16, 3, 2), generator=5) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=False))
    with pytest.raises(ValidationError, match="num_blocks=4 but the model has 3 residual blocks"):
        fixup_init(ResidualMLP(8, 16, 3, 2), num_blocks=4)
    with pytest.raises(ValidationError, match="fixup_init needs a residual model"):
        fixup_init(torch.nn.Linear(3, 3))


def test_he_baseline_explodes_with_depth():
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    stds = []
    for blocks in (1, 8, 32):
        with torch.no_grad():
            stds.append(he_residual_init(ResidualMLP(16, 64, blocks, 3), generator=0).features(x).std().item())
    assert stds[2] > 100 * stds[1] > 100 * stds[0]


@pytest.mark.parametrize("c", [4.0, 5.0, 6.0])
def test_hanin_fit_recovers_the_constant(c):
    """Issue 19 item 9: the fit tells c = 4, 5 and 6 apart (the old +-25% band passed all three)."""
    ratios = {name: np.cumprod([1 + c / n for n in widths]) for name, widths in hanin2018.SCHEDULES.items()}
    assert hanin2018.fit_constant(ratios) == pytest.approx(c, abs=0.011)
