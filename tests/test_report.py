"""Report writers and the words built from measurements."""

from __future__ import annotations

import base64
import copy

from initlab.experiments.findings import Findings, plain_verdict
from initlab.report import (Bullets, Document, Heading, Image, Paragraph, Table, notebook_comparison,
                            render_html, render_markdown, table_row)
from initlab.report.explain import measured_sentences

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def _doc(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG)
    return Document("Title <x>", [
        Heading("Section"), Paragraph("some **bold** and `code` & <tags>"), Bullets(["one", "two"]),
        Table(["a", "b|c"], [["1", "x|y"]]), Image("a.png", "a caption"),
    ])


def test_markdown(tmp_path):
    md = render_markdown(_doc(tmp_path))
    assert md.startswith("# Title <x>\n\n## Section\n")
    assert "| a | b\\|c |\n|---|---|\n| 1 | x\\|y |" in md
    assert "- one\n- two" in md and "![a caption](a.png)" in md


def test_html_is_self_contained_and_escaped(tmp_path):
    page = render_html(_doc(tmp_path), tmp_path)
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page
    assert "<title>Title &lt;x&gt;</title>" in page
    assert "<strong>bold</strong>" in page and "<code>code</code>" in page and "&amp; &lt;tags&gt;" in page
    assert "<th>b|c</th>" in page and "<li>two</li>" in page


def _findings(**changes) -> Findings:
    base = dict(hidden_units=10, distinct_units_init=10, distinct_units=10, dead_units_init=0, dead_units=0,
                dead_fraction=0.0, grad_layer="hidden1", grad_norm_init=0.2, grad_norm_end=0.1,
                next_weights_zero_init=False, codes_init=["healthy"], codes=["healthy"], at_chance=False,
                one_class=False, verdict="")
    return Findings(**{**base, **changes})


def test_plain_verdict_follows_the_numbers():
    assert plain_verdict(_findings()) == "Healthy: 10 distinct hidden units, all 10 alive; the gradient flows"
    sym = _findings(distinct_units_init=1, distinct_units=1, codes=["symmetry"], grad_norm_init=0.0, at_chance=True)
    assert plain_verdict(sym) == ("Symmetry never broken: 10 hidden units act as 1; no gradient reached the hidden "
                                  "layer at the first step; accuracy at chance level")
    dead = _findings(dead_units=10, dead_fraction=1.0, codes=["dead_units"], one_class=True)
    assert plain_verdict(dead).startswith("Every hidden unit dead") and "one class" in plain_verdict(dead)
    assert plain_verdict(_findings(dead_units=3, codes=["dead_units"])).startswith("3 of 10 hidden units dead")


def _entry(name, activation, codes, **summary):
    f = _findings(codes=codes, codes_init=codes, **summary)
    f.verdict = plain_verdict(f)
    return {"name": name, "activation": activation, "initializer": "zeros", "bias_initializer": "zeros",
            "train_accuracy": 0.5, "val_accuracy": 0.45, "chance_accuracy": 0.5, "summary": f.to_dict(),
            "diagnostics": {"layers": [{"name": "hidden1"}, {"name": "output"}],
                            "verdicts": [{"code": c, "message": f"msg {c}", "fix": ""} for c in codes]}}


def test_notebook_comparison_is_driven_by_verdict_codes():
    sym = _entry("a", "sigmoid", ["symmetry"], distinct_units=1, grad_norm_init=0.0, next_weights_zero_init=True)
    text = " ".join(notebook_comparison([sym]))
    assert "the measurement says symmetry" in text and "blamed vanishing gradients" in text
    vanish = copy.deepcopy(sym)
    vanish["summary"]["codes"] = ["vanishing_gradients"]
    assert "The measurement agrees with the notebook." in notebook_comparison([vanish])[0]
    # A configuration the notebook did not run gets no comparison, whatever its name.
    other = copy.deepcopy(sym)
    other["initializer"] = "he_normal"
    other["name"] = "zeros_sigmoid"
    assert notebook_comparison([other]) == []


def test_both_zero_runs_get_the_zero_gradient_note():
    relu = _entry("r", "relu", ["dead_units"], dead_units=10, dead_units_init=10, distinct_units=1,
                  grad_norm_init=0.0, grad_norm_end=0.0, next_weights_zero_init=True)
    sig = _entry("s", "sigmoid", ["symmetry"], distinct_units=1, grad_norm_init=0.0, next_weights_zero_init=True)
    paragraphs = notebook_comparison([relu, sig])
    assert len(paragraphs) == 3 and "For `r` and `s` alike" in paragraphs[2]
    assert "not even the symmetric update arrives" in paragraphs[0]


def test_table_row_and_sentences_carry_the_numbers():
    e = _entry("s", "sigmoid", ["symmetry"], distinct_units=1, grad_norm_init=0.0, grad_norm_end=0.00781,
               next_weights_zero_init=True)
    assert table_row(e)[3:9] == ["0.50", "0.45", "1 of 10", "0 of 10", "0", "0.00781"]
    text = " ".join(measured_sentences(e))
    assert "0 at step 0 (the weights of the layer above start at 0" in text
    assert "1 of 10 at the end" in text and "`symmetry`: msg symmetry" in text


def test_healthy_verdict_counts_the_few_dead_units():
    from dataclasses import replace

    assert plain_verdict(replace(_findings(), dead_units=1)) == (
        "Healthy: 10 distinct hidden units, 1 of 10 dead; the gradient flows")
