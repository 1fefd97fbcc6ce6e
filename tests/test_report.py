"""Report writers and the words built from measurements."""

from __future__ import annotations

import base64
import copy
from dataclasses import replace

from initlab.experiments.findings import Findings, plain_verdict
from initlab.report import Bullets, Document, Heading, Image, Paragraph, Table, notebook_comparison, render_html, render_markdown, table_row
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
                one_class=False, verdict="", hidden_layers=1, epochs=100, distinct_units_first=10)
    return Findings(**{**base, **changes})


def test_plain_verdict_follows_the_numbers():
    assert plain_verdict(_findings()) == ("Healthy: 10 of 10 hidden units distinct, none dead; gradient reaching "
                                          "hidden1 0.2 at step 0, 0.1 at the end")
    dead = _findings(dead_units=10, dead_fraction=1.0, codes=["dead_units"], one_class=True)
    assert plain_verdict(dead).startswith("Every hidden unit dead") and "one class" in plain_verdict(dead)
    assert plain_verdict(_findings(dead_units=3, codes=["dead_units"])).startswith("3 of 10 hidden units dead")


def test_a_symmetric_net_at_chance_is_a_one_unit_net_that_had_not_learned_yet():
    """Issue item 10: symmetry must not read as the cause of chance-level accuracy."""
    sym = _findings(distinct_units_init=1, distinct_units=1, distinct_units_first=1, codes=["symmetry"],
                    grad_norm_init=0.0, at_chance=True, one_class=True)
    text = plain_verdict(sym)
    assert text.startswith("Symmetric after 100 epochs: 10 hidden units act as 1, so the net is effectively a "
                           "one-unit net (a straight boundary at best); after 100 epochs it had not yet learned even "
                           "that: predicts one class for every point (chance level)")
    assert "no gradient reached hidden1 at step 0 (0.1 at the end)" in text
    deeper = plain_verdict(replace(sym, hidden_units=20, distinct_units=2, hidden_layers=2))
    assert "hidden1 acts as 1 unit" in deeper and "straight, parallel boundaries at best" in deeper


def test_a_stuck_layer_is_reported_from_both_ends_not_only_the_first_step():
    """Issue item 6: zero-init tanh/leaky_relu/linear: hidden weights exactly 0 at both ends, gradient 0 at both."""
    stuck = _findings(distinct_units_init=1, distinct_units=1, distinct_units_first=1, codes=["symmetry"],
                      grad_norm_init=0.0, grad_norm_end=0.0, one_class=True, at_chance=True,
                      stuck_layers=["hidden1"], weights_zero_init=["hidden1", "output"],
                      weights_zero_end=["hidden1", "output"])
    text = plain_verdict(stuck)
    assert text.startswith("Stuck: the weights and bias of hidden1 are exactly 0 at step 0 and still exactly 0 after "
                           "100 epochs, with a gradient of exactly 0 at both ends")
    assert "at the first step" not in text and "no gradient reached" not in text
    assert "one-unit net" not in text  # a stuck net is not "not yet learned": its output is constant
    assert "every input gives the same hidden output" in text
    # a layer that got no gradient at step 0 but moved later is not stuck
    moved = plain_verdict(replace(stuck, stuck_layers=[], grad_norm_end=0.01))
    assert "Stuck" not in moved and "no gradient reached hidden1 at step 0 (0.01 at the end)" in moved


def _layer(name, grad=0.0, bias_grad=0.0, weight=0.0, bias=0.0):
    return {"name": name, "weighted": True, "grad_norm": grad, "bias_grad_norm": bias_grad, "weight_norm": weight,
            "bias_norm": bias}


def _entry(name, activation, codes, hidden=("hidden1",), init_layers=None, end_layers=None, **summary):
    f = _findings(codes=codes, codes_init=codes, hidden_layers=len(hidden), **summary)
    f.verdict = plain_verdict(f)
    names = [*hidden, "output"]
    return {"name": name, "activation": activation, "initializer": "zeros", "bias_initializer": "zeros",
            "epochs": 100, "train_accuracy": 0.5, "val_accuracy": 0.45, "chance_accuracy": 0.5,
            "summary": f.to_dict(),
            "diagnostics_init": {"layers": init_layers or [_layer(n) for n in names]},
            "diagnostics": {"layers": end_layers or [_layer(n) for n in names],
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


def test_structure_sentences_come_from_the_structure():
    """Issue item 7: "one hidden layer" and "only the output layer learns" only where measured."""
    one = _entry("s", "sigmoid", ["symmetry"], distinct_units=1, distinct_units_first=1, grad_norm_init=0.0,
                 next_weights_zero_init=True)
    assert "There is one hidden layer" in notebook_comparison([one])[0]
    two = _entry("s", "sigmoid", ["symmetry"], hidden=("hidden1", "hidden2"), hidden_units=20, distinct_units=2,
                 distinct_units_first=1, grad_norm_init=0.0, next_weights_zero_init=True)
    text = " ".join(notebook_comparison([two]))
    assert "one hidden layer" not in text
    assert "the 2 hidden layers together have 10 distinct of 20 units at step 0" in " ".join(measured_sentences(two))


def test_both_zero_runs_get_the_zero_gradient_note_with_the_measured_gradients():
    relu_init = [_layer("hidden1"), _layer("output", bias_grad=0.5)]  # h = 0: only the output bias gets a gradient
    relu = _entry("r", "relu", ["dead_units"], dead_units=10, dead_units_init=10, distinct_units=1,
                  grad_norm_init=0.0, grad_norm_end=0.0, next_weights_zero_init=True, init_layers=relu_init)
    sig_init = [_layer("hidden1"), _layer("output", grad=0.1, bias_grad=0.2)]
    sig = _entry("s", "sigmoid", ["symmetry"], distinct_units=1, grad_norm_init=0.0, next_weights_zero_init=True,
                 init_layers=sig_init)
    paragraphs = notebook_comparison([relu, sig])
    assert len(paragraphs) == 3 and "For `r` and `s` alike" in paragraphs[2]
    assert "not even the symmetric update arrives" in paragraphs[0]
    assert "in `r`, output bias; in `s`, output weights and bias" in paragraphs[2]
    assert "Only the output layer learns" not in paragraphs[2]


def test_table_row_and_sentences_carry_the_numbers():
    e = _entry("s", "sigmoid", ["symmetry"], distinct_units=1, grad_norm_init=0.0, grad_norm_end=0.00781,
               next_weights_zero_init=True)
    assert table_row(e)[3:9] == ["0.50", "0.45", "1 of 10", "0 of 10", "0", "0.00781"]
    text = " ".join(measured_sentences(e))
    assert "0 at step 0 (the weights of the layer above start at 0" in text
    assert "1 of 10 at the end" in text and "`symmetry`: msg symmetry" in text
    assert "incoming weights, bias and outgoing weights" in text


def test_healthy_verdict_counts_the_few_dead_units():
    assert plain_verdict(replace(_findings(), dead_units=1)) == (
        "Healthy: 10 of 10 hidden units distinct, 1 of 10 dead; gradient reaching hidden1 0.2 at step 0, 0.1 at the end")
