"""initlab.verify: declared laws (read off the init code), statistics, recipes, report and CLI."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch
from scipy import stats
from torch import nn

import initlab
from initlab.cli.main import main
from initlab.verify import Law, verify
from initlab.verify.probe import Probe
from initlab.verify.stats import measure


def _seeded(seed, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def mlp(seed: int = 0) -> nn.Module:
    return _seeded(seed, lambda: nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.LayerNorm(64),
                                               nn.Linear(64, 10)))


# -- laws: moments against scipy (an independent computation) -----------------------------------
@pytest.mark.parametrize("law, ref", [
    (Law.normal(0.1, 0.02), stats.norm(0.1, 0.02)),
    (Law.uniform(-0.3, 0.5), stats.uniform(-0.3, 0.8)),
    (Law.truncated(0.0, 0.02, -0.04, 0.04), stats.truncnorm(-2, 2, scale=0.02)),
    (Law.truncated(0.5, 1.0, 0.0, 3.0), stats.truncnorm(-0.5, 2.5, loc=0.5)),
    (Law.truncated(0.0, 0.02, -2.0, 2.0), stats.norm(0, 0.02)),  # bounds 100 std out: a normal
])
def test_law_moments_match_scipy(law, ref):
    mean, var, _, excess = ref.stats(moments="mvsk")
    assert law.mu == pytest.approx(float(mean), abs=1e-12)
    assert law.sd == pytest.approx(math.sqrt(float(var)), rel=1e-9)
    assert law.kurtosis == pytest.approx(float(excess) + 3.0, rel=1e-7)


# -- the probe reads laws off torch's and the catalog's own code ---------------------------------
def test_probe_reads_torch_defaults():
    """nn.Linear: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), bias the same bound."""
    report = verify(nn.Linear(400, 30), "torch")
    w, b = report["weight"].law, report["bias"].law
    assert (w.family, w.low, w.high) == ("uniform", pytest.approx(-1 / 20), pytest.approx(1 / 20))
    assert (b.low, b.high) == (pytest.approx(-1 / 20), pytest.approx(1 / 20))
    emb = verify(nn.Embedding(50, 8, padding_idx=3), "torch")["weight"]
    assert (emb.law.family, emb.law.std) == ("normal", 1.0) and emb.declared.endswith("row 3 = 0")


@pytest.mark.parametrize("kwargs, law", [
    ({"std": 0.02}, Law.truncated(0.0, 0.02, -2.0, 2.0)),  # torch's absolute default bounds
    ({"std": 0.02, "a": -0.04, "b": 0.04}, Law.truncated(0.0, 0.02, -0.04, 0.04)),
])
def test_probe_reads_torch_trunc_normal(kwargs, law):
    probe = Probe.of((10, 10))
    nn.init.trunc_normal_(probe, **kwargs)
    assert probe._record.law == law


@pytest.mark.parametrize("spec, family, std", [
    ("he_normal", "normal", math.sqrt(2 / 64)),
    ("glorot_uniform", "uniform", math.sqrt(2 / (64 + 32))),
    ("lecun_normal", "truncated_normal", math.sqrt(1 / 64)),  # Keras: std corrected for the cut
    ({"name": "variance_scaling", "scale": 3.0, "mode": "fan_out", "distribution": "uniform"}, "uniform",
     math.sqrt(3 / 32)),
])
def test_catalog_recipe_declares_the_scheme_with_each_weights_fans(spec, family, std):
    model = nn.Linear(64, 32)
    initlab.apply_init(model, spec, generator=torch.Generator().manual_seed(0))
    report = verify(model, spec)
    law = report["weight"].law
    assert law.family == family and law.sd == pytest.approx(std, rel=1e-4)
    assert report["bias"].law == Law.constant(0.0) and report.ok


# -- statistics -----------------------------------------------------------------------------------
def test_std_tolerance_shrinks_with_sample_size():
    """SE(s/sigma) = sqrt((kappa - 1) / n) / 2: for a normal, sqrt(2/n)/2."""
    law = Law.normal(0.0, 1.0)
    for n in (1_000, 100_000):
        m = measure(torch.randn(n, generator=torch.Generator().manual_seed(0)), law)
        assert m.std_se == pytest.approx(math.sqrt(2 / n) / 2)
        assert set(m.p) == ({"std", "ks", "max_z"} | ({"kurtosis"} if n >= 100_000 else set()))


def test_max_z_p_value_is_the_maximum_of_n_draws():
    law, n = Law.normal(0.0, 1.0), 1000
    x = torch.zeros(n)
    x[0] = 4.0
    m = measure(x, law, min_values=10)
    q = 2 * stats.norm.sf(4.0 * (1 - 1e-5))
    assert m.p["max_z"] == pytest.approx(1 - (1 - q) ** n, rel=1e-6)
    assert measure(torch.full((200,), 0.5), Law.uniform(-0.4, 0.4)).p["max_z"] == 0.0  # beyond the support


def test_small_tensors_are_untested_constants_always_checked():
    report = verify(mlp(), "torch")
    assert report.untested == ["4.bias"]  # 10 values < 20
    assert set(report["0.bias"].measured.p) == {"ks", "max_z"}  # 64 values: exact tests only
    assert report["4.bias"].measured.p == {}
    assert report["3.weight"].status == "pass" and report["3.weight"].declared == "= 1"
    with torch.no_grad():
        mlp_model = mlp()
        mlp_model[3].weight[5] = 1.0001
    report = verify(mlp_model, "torch")
    assert report.failures == ["3.weight"] and report["3.weight"].failed == ["exact"]


def test_bonferroni_over_every_test():
    report = verify(mlp(), "torch", alpha=0.05)
    tests = sum(len(p.measured.p) for p in report.params if p.measured)
    assert report.tests == tests and report.threshold == pytest.approx(0.05 / tests)
    d = report.to_dict()
    assert (d["correction"], d["tests"], d["ok"]) == ("bonferroni", tests, True)


# -- recipes --------------------------------------------------------------------------------------
def test_unmatched_parameters_are_listed_not_passed():
    model = mlp()
    initlab.apply_init(model, "he_normal", generator=torch.Generator().manual_seed(0))
    report = verify(model, "he_normal")
    assert report.unmatched == ["3.weight", "3.bias"]  # a LayerNorm: apply_init does not draw it
    assert all(report[n].measured is None and "LayerNorm" not in report.failures for n in report.unmatched)
    assert "2 unmatched" in report.summary()


def test_dict_recipe_first_match_wins_and_skip(tmp_path):
    model = mlp()
    initlab.apply_init(model, "he_uniform", generator=torch.Generator().manual_seed(0))
    rules = {"3.*": "skip", "*.weight": "he_uniform", "*.bias": "zeros"}
    report = verify(model, rules)
    assert report.ok and report.by_status("skipped") == ["3.weight", "3.bias"] and report.unmatched == []
    toml = tmp_path / "recipe.toml"
    toml.write_text('[recipe]\n"3.*" = "skip"\n"*.weight" = "he_uniform"\n"*.bias" = "zeros"\n')
    assert verify(model, str(toml)).to_dict()["parameters"] == report.to_dict()["parameters"]
    wrong = verify(model, {"*.weight": "he_normal", "*": "zeros"})  # uniform draws against a normal law
    # 4.weight: 640 uniform values of the same std as the normal law are too few to tell apart
    assert wrong.failures == ["0.weight", "2.weight", "3.weight"]
    assert "ks" in wrong["3.weight"].failed  # LayerNorm's ones against a normal law
    assert verify(model, {"0.*": "he_uniform"}).unmatched == ["2.weight", "2.bias", "3.weight", "3.bias",
                                                              "4.weight", "4.bias"]


def test_hf_recipe_reads_gpt2_scaled_residual_init_from_config():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=3, n_embd=64, n_head=4, vocab_size=128, n_positions=32,
                                     initializer_range=0.05, bos_token_id=0, eos_token_id=0)
    model = _seeded(0, lambda: transformers.GPT2LMHeadModel(config))
    report = verify(model, "hf")
    assert report.ok
    assert report["transformer.h.1.mlp.c_proj.weight"].law == Law.normal(0.0, 0.05 / math.sqrt(2 * 3))
    assert report["transformer.h.1.mlp.c_fc.weight"].law == Law.normal(0.0, 0.05)
    assert report["transformer.h.1.ln_2.weight"].law == Law.constant(1.0)


def test_bad_input_is_one_line_validation_error():
    with pytest.raises(initlab.ValidationError, match="did you mean 'he_normal'"):
        verify(mlp(), "he_norml")
    with pytest.raises(initlab.ValidationError, match="recipe 'hf' needs a transformers PreTrainedModel"):
        verify(mlp(), "hf")
    with pytest.raises(initlab.ValidationError, match="alpha"):
        verify(mlp(), "torch", alpha=0)


def test_report_is_deterministic_and_renders():
    model = mlp()
    a, b = verify(model, "torch"), verify(model, "torch")
    assert a.to_dict() == b.to_dict()
    json.dumps(a.to_dict(), allow_nan=False)
    html = a._repr_html_()
    assert "0.weight" in html and "initlab verify" in html
    assert initlab.verify(model, "torch").ok  # the package attribute is callable


# -- CLI ------------------------------------------------------------------------------------------
FACTORIES = textwrap.dedent('''
    import torch
    from torch import nn

    def good():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))

    def bad():
        model = good()
        with torch.no_grad():
            model[0].weight.normal_(0, 0.5)
        return model

    def broken():
        raise RuntimeError("boom")
''')


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(FACTORIES)
    return path


def test_cli_exit_codes(factory_file, capsys, tmp_path):
    assert main(["verify", f"{factory_file}:good", "--recipe", "torch"]) == 0
    assert main(["verify", f"{factory_file}:bad", "--recipe", "torch"]) == 3
    out = capsys.readouterr().out
    assert "does not conform" in out and "0.weight" in out
    assert main(["verify", f"{factory_file}:bad", "--recipe", "torch", "--json"]) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["failures"] == ["0.weight"] and data["ok"] is False
    for argv in (["--recipe", "he_norml"], ["--recipe", "hf"], ["--recipe", str(tmp_path / "none.toml")]):
        assert main(["verify", f"{factory_file}:good", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(["verify", f"{factory_file}:broken", "--recipe", "torch"]) == 2
    assert "boom" in capsys.readouterr().err


def test_bfloat16_rounding_onto_a_uniform_bound_is_no_outlier():
    """bf16 rounds 0.1 up to 0.10009765625, beyond U(-0.1, 0.1)'s support: within 2 eps of the dtype
    that is rounding, not an outlier (the same value in float32 is 1e-3 beyond: an outlier)."""
    x = (torch.rand(1000, generator=torch.Generator().manual_seed(0)) * 0.2 - 0.1)
    x[0] = 0.1
    law = Law.uniform(-0.1, 0.1)
    assert measure(x.bfloat16(), law).p["max_z"] > 0.1
    assert measure(x.bfloat16().float(), law).p["max_z"] == 0.0


def test_hf_parameter_init_weights_skips_is_flagged():
    """A PreTrainedModel whose _init_weights skips its head (the bug of transformers PRs #39772 and
    #48152): the head is declared torch's default, with a note; a parameter nothing draws is unmatched."""
    transformers = pytest.importorskip("transformers")

    class TinyConfig(transformers.PretrainedConfig):
        model_type = "initlab-tiny"

        def __init__(self, initializer_range=0.02, **kw):
            super().__init__(**kw)
            self.initializer_range = initializer_range

    class Tiny(transformers.PreTrainedModel):
        config_class = TinyConfig

        def __init__(self, config):
            super().__init__(config)
            self.body, self.head = nn.Linear(64, 64), nn.Linear(64, 10)
            self.scale = nn.Parameter(torch.ones(64))
            self.post_init()

        def _init_weights(self, module):
            if isinstance(module, nn.Linear) and module.out_features != 10:
                nn.init.normal_(module.weight, std=self.config.initializer_range)
                nn.init.zeros_(module.bias)

    model = _seeded(0, lambda: Tiny(TinyConfig()))
    report = verify(model, "hf")
    assert report["body.weight"].law == Law.normal(0.0, 0.02) and report["body.weight"].note == ""
    head = report["head.weight"].law
    assert (head.family, head.low, head.high) == ("uniform", pytest.approx(-1 / 8), pytest.approx(1 / 8))
    assert report["head.weight"].note == "not written by Tiny._init_weights: torch's default"
    assert report.unmatched == ["scale"] and report.ok


def test_init_code_that_needs_values_is_one_line_error():
    """Init code reading values (``.item()``) cannot run on the meta probes: a one-line ValidationError."""
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(10, 10))
            self.reset_parameters()

        def reset_parameters(self):
            with torch.no_grad():
                self.w.normal_(0, 1).mul_(float(self.w.abs().max().item() > 0))

    with pytest.raises(initlab.ValidationError, match=r"running reset_parameters on recording tensors failed: "
                                                      r".*\{glob: spec\} dict instead"):
        verify(Odd(), "torch")


def test_a_partial_write_after_the_law_leaves_the_parameter_unmatched():
    """reset_parameters drawing a law, then overwriting a slice: no single law; unmatched, not failed."""
    class Sliced(nn.Linear):
        def reset_parameters(self):
            super().reset_parameters()
            with torch.no_grad():
                self.weight[:, :4].normal_(0, 5.0)

    report = verify(_seeded(0, lambda: Sliced(200, 200)), "torch")
    assert report.unmatched == ["weight"] and "part of the tensor" in report["weight"].reason
    assert report.ok and report["bias"].status == "pass"


def test_the_light_front_declares_the_statistics_default():
    import inspect

    import initlab
    from initlab.verify import stats

    assert inspect.signature(initlab.verify).parameters["min_values"].default == stats.MIN_VALUES


def test_a_misspelt_recipe_name_gets_a_did_you_mean():
    from torch import nn

    import initlab
    from initlab import ValidationError

    with pytest.raises(ValidationError, match=r"did you mean 'hf'\?"):
        initlab.verify(nn.Linear(4, 4), "hff")
