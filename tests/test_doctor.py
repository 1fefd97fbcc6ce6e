"""initlab doctor: reports for a user's model file, and one-line errors (exit 2) for bad input."""

from __future__ import annotations

import io
import json
import re
import shlex
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.cli.main import main
from initlab.diagnostics.doctor import load_factory, run_doctor

MODELS = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn


    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(out)) + x)


    def make():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), Block(8), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.LayerNorm(8), nn.Linear(8, 10))


    def deep_tanh():
        layers = []
        for _ in range(10):
            layer = nn.Linear(32, 32)
            nn.init.normal_(layer.weight, std=0.01)
            layers += [layer, nn.Tanh()]
        return nn.Sequential(*layers, nn.Linear(32, 1))


    def signal():
        return nn.Sequential(nn.Conv1d(2, 4, 5), nn.GELU(), nn.Conv1d(4, 4, 5), nn.ELU(), nn.Flatten(), nn.LazyLinear(2))


    def volume():
        return nn.Sequential(nn.Conv3d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))


    def wide():
        return nn.Sequential(nn.Linear(1024, 8), nn.ReLU(), nn.Linear(8, 1))


    def boom():
        raise ValueError("width must be positive")


    def not_a_model():
        return 42
''')


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "mymodels.py"
    path.write_text(MODELS)
    return path


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["doctor", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow  # measured 7-23 s on 2 busy cores
def test_report_for_cnn_with_residual_block_and_norms(model_file, tmp_path, capsys):
    out_dir = tmp_path / "report"
    code, out, err = _run(capsys, f"{model_file}:make", "--input-shape", "3,16,16", "--batch", "8", "--out", str(out_dir))
    assert code == 0, err
    data = json.loads((out_dir / "report.json").read_text())
    names = [layer["name"] for layer in data["layers"]]
    assert names == ["0", "2.conv1", "2.conv2", "2:relu()", "6"]
    assert data["input_shape"] == [8, 3, 16, 16]
    assert data["model"] == f"{model_file}:make"
    html = (out_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and 'src="http' not in html  # self-contained
    assert "2.conv1" in out and "healthy" in out


@pytest.mark.slow  # measured 7-23 s on 2 busy cores
def test_init_shows_before_and_after(model_file, tmp_path, capsys):
    code, out, err = _run(capsys, f"{model_file}:deep_tanh", "--input-shape", "32", "--init", "xavier_normal",
                          "--out", str(tmp_path))
    assert code == 0, err
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["init"] == "glorot_normal"
    assert [v["code"] for v in data["before"]["verdicts"]] == ["vanishing_gradients"]
    assert [v["code"] for v in data["after"]["verdicts"]] == ["healthy"]
    assert "->" in out and "as built" in out and "glorot_normal" in out


def test_json_flag_prints_the_report(model_file, tmp_path, capsys):
    code, out, _ = _run(capsys, f"{model_file}:signal", "--input-shape", "2,32", "--json", "--out", str(tmp_path))
    assert code == 0
    data = json.loads(out)
    assert [(l["kind"], l["activation"]) for l in data["layers"]] == [
        ("Conv1d", "gelu"), ("Conv1d", "elu"), ("Linear", None)]
    assert data == json.loads((tmp_path / "report.json").read_text())


def test_conv3d_and_data_file(model_file, tmp_path, capsys):
    data = np.random.default_rng(0).standard_normal((20, 1, 6, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", data)
    code, out, err = _run(capsys, f"{model_file}:volume", "--data", str(tmp_path / "x.npy"), "--batch", "12",
                          "--json", "--out", str(tmp_path / "r"))
    assert code == 0, err
    report = json.loads(out)
    assert report["input_shape"] == [12, 1, 6, 6, 6]
    assert report["layers"][0]["kind"] == "Conv3d"


@pytest.mark.parametrize(
    "target_suffix, extra, expected",
    [
        ("missing.py:make", ["--input-shape", "3"], "model file '{dir}/missing.py' not found"),
        ("mymodels.py:mak", ["--input-shape", "3"], "factory 'mak' not found in '{dir}/mymodels.py'; did you mean 'make'?"),
        ("mymodels.py:boom", ["--input-shape", "3"], "factory 'boom' raised ValueError: width must be positive"),
        ("mymodels.py:not_a_model", ["--input-shape", "3"], "factory 'not_a_model' returned int, expected a torch.nn.Module"),
        ("mymodels.py:make", ["--input-shape", "5"], "the model rejected input float32 (64, 5): RuntimeError:"),
        ("mymodels.py:make", ["--input-shape", "3,x"], "input-shape must be positive integers separated by commas"),
        ("mymodels.py:make", ["--input-shape", "3,8,8", "--init", "he_norml"], "did you mean 'he_normal'?"),
        ("mymodels.py:make", ["--data", "nothing.npy"], "data file 'nothing.npy' not found"),
        ("mymodels.py", ["--input-shape", "3"], "model must be FILE.py:FACTORY or MODULE:FACTORY"),
    ],
)
def test_bad_input_exits_2_with_one_line(model_file, tmp_path, capsys, target_suffix, extra, expected):
    code, out, err = _run(capsys, f"{model_file.parent}/{target_suffix}", *extra, "--out", str(tmp_path / "r"))
    assert code == 2
    assert expected.format(dir=model_file.parent) in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err + out
    assert not (tmp_path / "r").exists()


@pytest.mark.slow  # measured 7-23 s on 2 busy cores
def test_docs_doctor_section_runs(tmp_path, capsys, monkeypatch):
    """The docs' doctor example (docs/tutorials/diagnose.md): its model file and its commands, as written."""
    readme = (Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "diagnose.md").read_text()
    section = readme.split("<!-- section:doctor -->")[1].split("<!-- /section:doctor -->")[0]
    source = re.search(r"```python\n# mymodel\.py\n(.*?)```", section, re.S).group(1)
    (tmp_path / "mymodel.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    commands = re.findall(r"^initlab (doctor .*)$", section, re.M)
    assert len(commands) >= 2
    for command in commands:
        args = shlex.split(command)
        assert main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "initlab-out" / "doctor" / "report.html").exists()


def test_init_is_not_drawn_from_the_inputs_stream(model_file):
    """The batch and the re-initialization share one seed but not the same numbers: a He layer
    on standard-normal inputs gives pre-activations of std sqrt(2) (He et al., 2015)."""
    from initlab.diagnostics.doctor import run_doctor

    # (with the same seed twice, unit i's weights would be input row i scaled: pre-activations ~ 45)
    result = run_doctor(f"{model_file}:wide", "1024", batch=64, init="he_normal", seed=0)
    assert result.after.layers[0].pre_std == pytest.approx(2 ** 0.5, rel=0.15)


HF_MODELS = textwrap.dedent('''
    import torch


    def gpt2():
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(0)
        return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=200, n_positions=32,
                                          bos_token_id=0, eos_token_id=0))


    def bert():
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        return BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=64, vocab_size=200, max_position_embeddings=32))
''')


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    """hf.py (gpt2, bert factories), ids.npy (8 x 16 token ids) and batch.npz (input_ids + attention_mask)."""
    folder = tmp_path_factory.mktemp("hf")
    (folder / "hf.py").write_text(HF_MODELS)
    ids = np.random.default_rng(0).integers(0, 200, (8, 16))
    mask = np.ones((8, 16), dtype=np.int64)
    mask[:, 10:] = 0
    np.save(folder / "ids.npy", ids)
    np.savez(folder / "batch.npz", input_ids=ids, attention_mask=mask)
    return folder


def _report(capsys, *args: str) -> dict:
    code, out, err = _run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.slow  # measured 7-23 s on 2 busy cores
def test_token_ids_for_a_gpt2(hf_folder, tmp_path, capsys):
    """Issue 9: a Hugging Face causal LM returns a ModelOutput and needs integer ids."""
    report = _report(capsys, f"{hf_folder}/hf.py:gpt2", "--dtype", "long", "--vocab", "200", "--input-shape", "16",
                     "--batch", "4", "--out", str(tmp_path / "r"))
    assert report["input_shape"] == [4, 16]
    head = [layer for layer in report["layers"] if layer["name"] == "lm_head"][0]
    assert head["units"] == 200 and head["grad_norm"] > 0  # the logits were measured
    # --data ids.npy keeps the ids integer: the same numbers as diagnose() on those ids in Python
    from initlab import diagnose

    from_file = run_doctor(f"{hf_folder}/hf.py:gpt2", data=hf_folder / "ids.npy", batch=4)
    ids = torch.as_tensor(np.load(hf_folder / "ids.npy")[:4])
    assert from_file.before.loss == diagnose(load_factory(f"{hf_folder}/hf.py:gpt2")(), ids).loss


def test_keyword_inputs_from_npz_and_output_field_for_bert(hf_folder, tmp_path, capsys):
    pooled = _report(capsys, f"{hf_folder}/hf.py:bert", "--data", str(hf_folder / "batch.npz"), "--output",
                     "pooler_output", "--out", str(tmp_path / "c"))
    ids_only = run_doctor(f"{hf_folder}/hf.py:bert", data=hf_folder / "ids.npy").before
    masked = run_doctor(f"{hf_folder}/hf.py:bert", data=hf_folder / "batch.npz").before
    assert ids_only.input_shape == masked.input_shape == (8, 16) and pooled["input_shape"] == [8, 16]
    assert masked.loss != ids_only.loss  # the attention_mask reached the forward
    assert {r["name"]: r for r in pooled["layers"]}["pooler.dense"]["grad_norm"] > 0  # measured through pooler_output
    assert masked.layer("pooler.dense").grad_norm == 0.0  # last_hidden_state (the default) does not reach it


def test_integer_data_for_a_float_model_needs_dtype_float(model_file, tmp_path, capsys):
    """Integer arrays stay integer (token ids); a model of float features says so and --dtype float casts."""
    pixels = np.random.default_rng(1).integers(0, 256, (10, 1024)).astype(np.uint8)
    np.save(tmp_path / "pixels.npy", pixels)
    code, out, err = _run(capsys, f"{model_file}:wide", "--data", str(tmp_path / "pixels.npy"), "--out", str(tmp_path / "r"))
    assert code == 2 and "Traceback" not in err
    assert err.strip() == ("error: the model rejected input int64 (10, 1024): RuntimeError: mat1 and mat2 must have the "
                           "same dtype, but got Long and Float; the model takes float inputs: use --dtype float (it also "
                           "casts --data arrays to float32), or give a float tensor")
    result = run_doctor(f"{model_file}:wide", data=tmp_path / "pixels.npy", dtype="float")
    assert result.input_shape == (10, 1024)
    first = result.before.layers[0]
    assert first.input_rms == pytest.approx(float(np.sqrt((pixels.astype(np.float64) ** 2).mean())), rel=1e-5)


@pytest.mark.parametrize("factory, extra, expected", [
    ("gpt2", ["--input-shape", "16"], "the model rejected input float32 (64, 16): RuntimeError: Expected tensor for "
     "argument #1 'indices'"),
    ("gpt2", ["--input-shape", "16"], "try --dtype long --vocab N (N = the embedding's size)"),
    ("gpt2", ["--input-shape", "16", "--dtype", "long", "--vocab", "500"], "index out of range in self; some input ids "
     "are not below the embedding's size: try a smaller --vocab"),
    ("bert", ["--data", "{hf}/ids.npy", "--output", "pooled"], "output 'pooled' is not a field of the model's "
     "BaseModelOutputWithPoolingAndCrossAttentions (tensor fields: last_hidden_state, pooler_output)"),
    ("bert", ["--data", "{hf}/ids.npy", "--output", "pooler_outpt"], "did you mean 'pooler_output'?"),
    ("bert", ["--input-shape", "16", "--dtype", "lng"], "unknown dtype 'lng'; did you mean 'long'? (allowed: float, long)"),
    ("bert", ["--input-shape", "16", "--dtype", "long"], "--dtype long needs --vocab N"),
])
def test_token_models_bad_input_one_line(hf_folder, tmp_path, capsys, factory, extra, expected):
    extra = [a.replace("{hf}", str(hf_folder)) for a in extra]
    code, out, err = _run(capsys, f"{hf_folder}/hf.py:{factory}", *extra, "--out", str(tmp_path / "r"))
    assert code == 2
    assert expected in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err + out
    assert not (tmp_path / "r").exists()


@pytest.mark.slow  # measured 7-23 s on 2 busy cores
def test_progress_bar_follows_the_passes_and_layers_on_a_terminal(model_file, tmp_path, monkeypatch):
    from rich.console import Console

    from initlab.cli.commands import doctor as command

    screen = io.StringIO()
    monkeypatch.setattr(command, "err_console", Console(file=screen, force_terminal=True, width=120))
    assert main(["doctor", f"{model_file}:deep_tanh", "--input-shape", "32", "--init", "he_normal",
                 "--out", str(tmp_path / "r")]) == 0
    shown = screen.getvalue()
    for text in ("diagnosing as built", "diagnosing he_normal", "forward and backward pass", "11/11", "report"):
        assert text in shown, text
    # not a terminal (a log, a pipe): no bar at all
    monkeypatch.setattr(command, "err_console", Console(file=io.StringIO(), force_terminal=False))
    with command._progress() as progress:
        assert progress is None
