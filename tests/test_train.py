"""`initlab train`: one experiment with any data, initializer, activation and network."""

from __future__ import annotations

import json

import pytest

from initlab import ValidationError
from initlab.cli import main
from initlab.experiments import RunSpec, parse_hidden, parse_init, train


def _entry(folder):
    return json.loads((folder / "results.json").read_text())["experiments"][0]


def test_cli_train_two_hidden_layers(tmp_path, capsys):
    code = main(["train", "--dataset", "circles", "--init", "kaiming_normal", "--activation", "tanh",
                 "--hidden", "8,6", "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--epochs", "5",
                 "--seed", "2", "--n-samples", "120", "--out", str(tmp_path)])
    assert code == 0
    e = _entry(tmp_path)
    assert (e["name"], e["initializer"], e["activation"], e["hidden"]) == ("kaiming_normal_tanh", "he_normal", "tanh", [8, 6])
    assert (e["optimizer"], e["learning_rate"], e["momentum"], e["epochs"], e["seed"]) == ("sgd", 0.1, 0.9, 5, 2)
    assert (e["n_train"], e["n_val"]) == (96, 24)
    assert [layer["units"] for layer in e["diagnostics"]["layers"]] == [8, 6, 1]
    assert e["summary"]["hidden_units"] == 14 and len(e["history"]["val_accuracy"]) == 5
    for f in ("report.html", "report.md", "kaiming_normal_tanh_boundary.png", "kaiming_normal_tanh_history.png", "boundaries.png"):
        assert (tmp_path / f).is_file(), f
    assert "kaiming_normal_tanh" in capsys.readouterr().out


def test_cli_train_json_spec_and_bias_init(tmp_path, capsys):
    code = main(["train", "--init", '{"name": "normal", "std": 0.5}', "--bias-init", "ones", "--name", "wide",
                 "--epochs", "1", "--out", str(tmp_path), "--json"])
    assert code == 0
    e = json.loads(capsys.readouterr().out)["experiments"][0]
    assert e["name"] == "wide" and e["initializer"] == "normal(std=0.5)" and e["bias_initializer"] == "ones"
    assert e["spec"]["init"] == {"name": "normal", "std": 0.5}


def test_train_multiclass_without_2d_inputs_skips_the_boundary(tmp_path):
    spec = RunSpec(name="digits", dataset="digits", hidden=[16], init="he_normal", epochs=1)
    result, outputs = train(spec, tmp_path)
    assert result.grid is None and result.end_diagnosis.layers[-1].units == 10
    assert sorted(p.name for p in outputs.figures) == ["digits_histograms.png", "digits_history.png", "digits_monitor.png"]
    assert "digits_history.png" in outputs.report_md.read_text()


def test_spec_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValidationError, match="unknown run field 'epoch'; did you mean 'epochs'"):
        RunSpec(epoch=3)
    with pytest.raises(ValidationError, match="hidden needs 1 to 100 layer sizes"):
        RunSpec(hidden=[])
    with pytest.raises(ValidationError, match="batch_size must be an integer in \\[1, 1000000\\], got 0"):
        RunSpec(batch_size=0)
    with pytest.raises(ValidationError, match="epochs must be an integer in \\[1, 1000000\\], got 'many'"):
        RunSpec(epochs="many")
    with pytest.raises(ValidationError, match="momentum must be a number in \\[0.0, 1.0\\), got 1.0"):
        RunSpec(momentum=1.0)
    with pytest.raises(ValidationError, match="seed sets init_seed and order_seed"):
        RunSpec(seed=1, init_seed=2)
    assert parse_hidden("32, 16") == [32, 16] and parse_init("xavier") == "xavier"


@pytest.mark.parametrize("args, message", [
    (["--init", "he_norml"], "unknown initializer 'he_norml'; did you mean 'he_normal'?"),
    (["--bias-init", "zeroes"], "unknown initializer 'zeroes'; did you mean 'zeros'?"),
    (["--activation", "rleu"], "unknown activation 'rleu'; did you mean 'relu'?"),
    (["--epochs", "0"], "epochs must be an integer in [1, 1000000], got 0"),
    (["--epochs", "-3"], "epochs must be an integer in [1, 1000000], got -3"),
    (["--hidden", "0"], "hidden[0] must be an integer in [1, 100000], got 0"),
    (["--hidden", "10,0"], "hidden[1] must be an integer in [1, 100000], got 0"),
    (["--hidden", "10,a"], "hidden must be comma-separated layer sizes such as 10 or 10,10; got '10,a'"),
    (["--dataset", "moon"], "unknown dataset 'moon'; did you mean 'moons'?"),
    (["--dataset", "BAD"], "line 3, column 'Y': not a number: 'oops'"),
    (["--optimizer", "adm"], "unknown optimizer 'adm'; did you mean 'adam'?"),
    (["--lr", "0"], "learning_rate must be a number in (0.0, 1000.0], got 0.0"),
    (["--init", '{"name": "normal", "stdd": 1}'], "initializer 'normal' has no parameter 'stdd'; did you mean 'std'?"),
    (["--init", "{oops"], "initializer spec is not valid JSON"),
])
def test_cli_train_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    bad = tmp_path / "bad.csv"
    bad.write_text("X,Y,class\n1,2,0\n3,oops,1\n1,2,0\n1,2,1\n1,2,0\n1,2,1\n")
    args = [str(bad) if a == "BAD" else a for a in args]
    assert main(["train", "--out", str(tmp_path / "o"), *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "o").exists()
