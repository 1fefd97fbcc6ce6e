"""Notebook display: every object a user holds renders as small, self-contained, escaped HTML
(``_repr_html_``), its figures inline; its plain ``repr`` is one short line; rendering changes
no global state."""

from __future__ import annotations

import dataclasses
import math

import matplotlib
import pytest
import torch

from initlab import apply_init, initializers
from initlab.diagnostics import diagnose
from initlab.experiments import RunSpec, SweepReport, run_experiment
from initlab.models import MLP
from initlab.theory import MeanField

IMG = '<img src="data:image/png;base64,'
NAME = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def result():
    return run_experiment(RunSpec(name=NAME, init="zeros", activation="sigmoid", epochs=2, n_samples=60))


@pytest.fixture(scope="module")
def zero_sigmoid():
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    return diagnose(apply_init(MLP([2, 10, 1], "sigmoid"), "zeros"), x, (x[:, 0] > 0).float())


def _sweep_report() -> SweepReport:
    return SweepReport("ab12cd34", "runs/<b>.db", total=24, skipped=4, trained=20, diverged=3, batches=4,
                       wall_time=2.5, device="cpu", executor="LocalExecutor()")


def _escaped(html: str) -> None:
    assert NAME not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_diagnosis_html_has_the_layer_table_and_the_lab_badges(zero_sigmoid):
    html = zero_sigmoid._repr_html_()
    assert ">symmetry</span>" in html and "#d62728" in html  # the badge, in the lab's red (lab.css --bad)
    assert "1 of 10" in html  # hidden1: one distinct unit of ten
    for header in ("distinct units", "dead", "saturated", "activation std", "|dL/dW|", "weight std (healthy)"):
        assert f">{header}</th>" in html
    assert "hidden1" in html and "sigmoid" in html and "Fix: " in html
    assert "0 (0.707)" in html  # weight std 0 against the healthy 1/sqrt(2)
    assert repr(zero_sigmoid) == "Diagnosis(layers=2, verdicts=['symmetry'], loss=0.693)"


def test_experiment_result_html_shows_boundary_and_curves_inline(result):
    html = result._repr_html_()
    assert html.count(IMG) == 2  # decision boundary and loss curves
    assert result.record.run_id in html and f"{result.val_accuracy:.3g}" in html
    assert ">symmetry</span>" in html and "Diagnosis at init" in html
    _escaped(html)
    assert len(html) < 250_000


def test_record_html_shows_its_id_accuracy_verdicts_and_curves(result):
    record = result.record
    html = record._repr_html_()
    assert record.run_id in html and "val accuracy" in html and f"{record.val_accuracy:.3g}" in html
    assert html.count(IMG) == 1 and ">finished</span>" in html and ">symmetry</span>" in html
    _escaped(html)
    diverged = dataclasses.replace(record, diverged_epoch=1)
    assert "diverged in epoch 2" in diverged._repr_html_()  # 1-based, as the curves' axis


def test_catalog_table_lists_every_scheme_and_catalog_stays_a_list():
    table = initializers.table()
    html = table._repr_html_()
    for scheme in initializers.catalog():
        assert f">{scheme.name}</td>" in html
    assert "Glorot &amp; Bengio, 2010" in html and "out &lt;= in" in html  # escaped formulas and references
    assert list(table) == initializers.catalog() and len(table) == len(initializers.names())
    assert type(initializers.catalog()) is list


def test_meanfield_html_shows_the_theory_point():
    html = MeanField("tanh", sigma_w2=1.5, sigma_b2=0.05)._repr_html_()
    for key in ("q*", "chi_1", "c*", "xi_q", "xi_c", "6 xi_c"):
        assert f">{key}</td>" in html
    assert ">ordered</span>" in html and "0.9386" in html  # chi_1
    critical = MeanField("relu", sigma_w2=2.0)._repr_html_()
    assert ">critical</span>" in critical and ">inf</td>" in critical


def test_sweep_report_html_summarises_the_sweep():
    html = _sweep_report()._repr_html_()
    assert ">3 diverged</span>" in html and ">20</td>" in html and "ab12cd34" in html
    assert "runs/&lt;b&gt;.db" in html and "<b>" not in html


def _objects(result, zero_sigmoid):
    return [result, result.record, zero_sigmoid, initializers.table(), MeanField("tanh", 1.5, 0.05), _sweep_report()]


def test_plain_reprs_are_one_short_line(result, zero_sigmoid):
    long = dataclasses.replace(result.record, spec=result.spec.replace(name="x" * 200))
    for obj in [*_objects(result, zero_sigmoid), long]:
        text = repr(obj)
        assert "\n" not in text and len(text) < 200, text
    assert result.record.run_id in repr(result.record) and result.record.run_id in repr(result)


def _raw_rc() -> dict:
    """rcParams as stored, read without resolving an undecided backend (dict.copy would resolve it)."""
    return {k: dict.__getitem__(matplotlib.rcParams, k) for k in dict.keys(matplotlib.rcParams)}


def test_rendering_changes_no_global_state(result, zero_sigmoid):
    rng = torch.random.get_rng_state()
    rc = _raw_rc()  # the backend included: undecided stays undecided
    for obj in _objects(result, zero_sigmoid):
        assert obj._repr_html_().startswith("<div")
    assert torch.equal(torch.random.get_rng_state(), rng)
    now = _raw_rc()
    changed = sorted(k for k, v in now.items()
                     if not (v is rc[k] or v == rc[k] or (isinstance(v, float) and math.isnan(v) and math.isnan(rc[k]))))
    assert not changed and now.keys() == rc.keys(), changed
