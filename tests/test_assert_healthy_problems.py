"""Issue 19 item 4: a warning that the target is missed, or that stability could not be analysed,
is a problem: ``problems()`` lists it and ``assert_healthy()`` raises. Measured independently with
plain forward passes."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from initlab.autoinit import UnhealthyInitError, autoinit
from initlab.autoinit.report import PROBLEM_CODES, AutoInitReport, Problem
from initlab.diagnostics import thresholds
from initlab.initializers.lsuv import LSUVResult
from modules import Act


def test_gpt2_analytic_logits_off_target_raise():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=4, n_embd=64, n_head=4, vocab_size=200,
                                                                 n_positions=64))
    report = autoinit(model, torch.randint(0, 200, (8, 32), generator=torch.Generator().manual_seed(1)), generator=0)
    fresh = torch.randint(0, 200, (8, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits_std = float(model.eval()(fresh).logits.std())
    lo, hi = thresholds.STD_BAND
    assert not lo <= logits_std / report.target_std <= hi, logits_std  # ~9: the tied head reads unit embeddings
    tied = [p for p in report.problem_records() if p.code == "tied_output_off"]
    assert [p.where for p in tied] == ["lm_head"]
    assert tied[0].numbers["measured_std"] == pytest.approx(logits_std, rel=0.15)
    assert tied[0].message in report.problems()
    with pytest.raises(UnhealthyInitError, match="lm_head: measured output std"):
        report.assert_healthy()


def test_stability_unavailable_is_a_problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), Act(lambda x: torch.exp(x**2)), nn.Linear(64, 10))
    report = autoinit(model, torch.randn(128, 64, generator=torch.Generator().manual_seed(1)), mode="empirical",
                      generator=0)
    assert report.stability == []
    assert any(w.startswith("stability analysis unavailable") for w in report.warnings)
    assert [p.code for p in report.problem_records()] == ["stability_unavailable"]
    with pytest.raises(UnhealthyInitError, match="stability analysis unavailable"):
        report.assert_healthy()


def test_records_are_structured_and_strings_stay_strings():
    report = AutoInitReport("empirical", 1.0, stability=[{"activation": "sin", "chi_1": 1.31, "stable": False,
                                                          "gradient_gain": 900.0, "layers": 50, "message": "sin: x"}],
                            info={"signal_drift": {"ratio": 8.5e3, "first": "0", "last": "8"}})
    records = report.problem_records()
    assert [(p.code, p.where) for p in records] == [("unstable_depth", "sin"), ("signal_drift", "0 .. 8")]
    assert records[0].numbers == {"chi_1": 1.31, "gradient_gain": 900.0, "layers": 50}
    assert records[1].numbers == {"ratio": 8.5e3}
    assert all(isinstance(p, Problem) and p.code in PROBLEM_CODES for p in records)
    assert report.problems() == [p.message for p in records] and all(isinstance(s, str) for s in report.problems())
    # a drift inside the band is no problem
    report.info["signal_drift"]["ratio"] = 1.9
    assert [p.code for p in report.problem_records()] == ["unstable_depth"]


def test_lsuv_drift_warning_uses_the_stream_band():
    assert inspect.signature(LSUVResult.warnings).parameters["limit"].default == thresholds.STREAM_SPREAD
