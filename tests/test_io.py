"""Inputs and outputs of any kind: call_model, pick_output, make_inputs, load_data, and
``diagnose`` on tuple / dict inputs and ModelOutput-like outputs."""

from __future__ import annotations

import dataclasses
from collections import namedtuple

import numpy as np
import pytest
import torch
from torch import nn

from initlab import diagnose
from initlab._validation import DataError, ValidationError
from initlab.diagnostics.io import as_inputs, batch_shape, call_model, describe, load_data, make_inputs, pick_output, with_dtype


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(2, 4)

    def forward(self, x, y):
        return self.a(x) + self.b(y)


class TinyLM(nn.Module):
    """An embedding-first model taking keyword inputs, returning a dict (like a tokenizer's batch)."""

    def __init__(self, vocab: int = 50):
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.hidden = nn.Linear(8, 16)
        self.head = nn.Linear(16, vocab)

    def forward(self, input_ids, attention_mask=None):
        h = torch.tanh(self.hidden(self.embed(input_ids)))
        if attention_mask is not None:
            h = h * attention_mask[..., None]
        return {"logits": self.head(h), "hidden": h}


@dataclasses.dataclass
class Out:
    loss: torch.Tensor | None
    scores: torch.Tensor
    extra: torch.Tensor


def test_call_model_passes_a_tensor_a_tuple_or_keywords():
    model = TwoInputs()
    x, y = torch.randn(5, 3), torch.randn(5, 2)
    assert torch.equal(call_model(model, (x, y)), model(x, y))
    assert torch.equal(call_model(model, {"y": y, "x": x}), model(x, y))
    assert torch.equal(call_model(model.a, x), model.a(x))


def test_as_inputs_keeps_integer_ids_and_makes_floats_float32():
    assert as_inputs(np.arange(6).reshape(2, 3)).dtype == torch.int64
    assert as_inputs(np.ones((2, 3))).dtype == torch.float32  # float64 arrays meet float32 weights
    assert as_inputs([[1.5, 2.0], [0.0, 1.0]]).shape == (2, 2)  # a nested list of numbers is one batch
    both = as_inputs((np.ones((2, 3)), np.zeros((2, 2), dtype=np.int32)))
    assert isinstance(both, tuple) and [t.dtype for t in both] == [torch.float32, torch.int64]
    same = as_inputs([torch.ones(2, 3), np.zeros((2, 3))])  # two arguments of one shape, not one stacked batch
    assert isinstance(same, tuple) and len(same) == 2 and same[0].shape == (2, 3)
    kw = as_inputs({"input_ids": np.ones((2, 4), dtype=np.int64), "attention_mask": np.ones((2, 4), dtype=bool)})
    assert describe(kw) == "{input_ids: int64 (2, 4), attention_mask: bool (2, 4)}"
    assert batch_shape(kw) == (2, 4)
    with pytest.raises(ValidationError, match="got str"):
        as_inputs("tokens")
    with pytest.raises(ValidationError, match="inputs is an empty tuple"):
        as_inputs([])


def test_pick_output_from_dicts_dataclasses_and_tuples():
    a, b, c = torch.zeros(1), torch.ones(2), torch.full((3,), 2.0)
    assert pick_output(a) is a
    assert pick_output({"hidden": a, "logits": b}) is b
    assert pick_output({"only": c, "note": "text"}) is c
    assert pick_output({"hidden": a, "logits": b}, "hidden") is a
    assert pick_output(Out(None, b, c)) is b  # first tensor field, the None loss skipped
    assert pick_output(Out(None, b, c), "extra") is c
    assert pick_output((None, a, b)) is a
    assert pick_output((a, b), "1") is b
    Pair = namedtuple("Pair", "first second")
    assert pick_output(Pair(a, b), "second") is b


def test_pick_output_from_huggingface_model_outputs():
    from transformers.modeling_outputs import BaseModelOutputWithPooling, CausalLMOutputWithCrossAttentions

    logits, hidden, pooled = torch.randn(2, 3, 5), torch.randn(2, 3, 4), torch.randn(2, 4)
    assert pick_output(CausalLMOutputWithCrossAttentions(logits=logits)) is logits
    out = BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled)
    assert pick_output(out) is hidden
    assert pick_output(out, "pooler_output") is pooled
    with pytest.raises(ValidationError) as err:
        pick_output(out, "pooled_output")
    assert str(err.value) == ("output 'pooled_output' is not a field of the model's BaseModelOutputWithPooling; "
                              "did you mean 'pooler_output'? (tensor fields: last_hidden_state, pooler_output)")


@pytest.mark.parametrize("output, key, expected", [
    ({"a": torch.zeros(1), "b": torch.ones(1)}, None,
     "the model returned a dict with several tensors (a, b) and no 'logits'; pick one with --output FIELD (output='FIELD' in Python)"),
    ({"a": "x"}, None, "the model returned a dict with no tensor field (fields: a)"),
    ((torch.zeros(1), [torch.zeros(1)]), "1",
     "output '1' of the model's tuple is a list, not a tensor; pick one with --output FIELD (output='FIELD' in Python)"),
    ((torch.zeros(1),), "5", "output 5 is out of range: the model returns a tuple of 1"),
    ((torch.zeros(1),), "logits", "output 'logits': the model returns a tuple, so --output must be an index in [0, 0]"),
    (torch.zeros(1), "logits", "output 'logits' was given, but the model returns a plain tensor; drop --output"),
    ("text", None, "the model must return a tensor, a tuple, a dict or a dataclass of tensors, got str"),
])
def test_pick_output_errors_say_what_came_back_and_what_to_try(output, key, expected):
    with pytest.raises(ValidationError) as err:
        pick_output(output, key)
    assert str(err.value) == expected


def test_out_of_memory_inside_the_model_is_not_called_a_bad_input():
    class Hungry(nn.Module):
        def forward(self, x):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    with pytest.raises(RuntimeError, match="can't allocate memory"):
        call_model(Hungry(), torch.zeros(1))


def test_an_embedding_model_given_floats_is_told_to_use_long_ids():
    model = TinyLM()
    with pytest.raises(ValidationError) as err:
        call_model(model, {"input_ids": torch.randn(4, 16)})
    text = str(err.value)
    assert text.startswith("the model rejected input {input_ids: float32 (4, 16)}: RuntimeError: Expected tensor for argument #1 'indices'")
    assert text.endswith("try --dtype long --vocab N (N = the embedding's size), or give a LongTensor")
    assert "\n" not in text
    with pytest.raises(ValidationError, match=r"int64 \(2, 3\): IndexError: index out of range .*smaller --vocab"):
        call_model(model, torch.full((2, 3), 50))


def test_keyword_inputs_with_wrong_names_are_told_the_forward_parameters():
    with pytest.raises(ValidationError) as err:
        call_model(TinyLM(), {"ids": torch.zeros(2, 3, dtype=torch.long)})
    assert str(err.value) == ("the model rejected input {ids: int64 (2, 3)}: TypeError: TinyLM.forward() got an "
                              "unexpected keyword argument 'ids'; the inputs are passed as keyword arguments by name "
                              "(ids); name them as the forward's parameters (input_ids, attention_mask)")


def test_make_inputs_long_ids_are_uniform_below_vocab_and_seeded():
    ids = make_inputs((64, 32), "long", vocab=7, generator=3)
    assert ids.dtype == torch.int64 and ids.shape == (64, 32)
    assert int(ids.min()) == 0 and int(ids.max()) == 6
    counts = torch.bincount(ids.reshape(-1), minlength=7).double() / ids.numel()
    assert float((counts - 1 / 7).abs().max()) < 0.02  # 2048 draws: std of a frequency ~ 0.008
    assert torch.equal(ids, make_inputs((64, 32), "long", vocab=7, generator=3))
    x = make_inputs((4000,), "float", generator=0)
    assert x.dtype == torch.float32 and abs(float(x.mean())) < 0.06 and abs(float(x.std()) - 1) < 0.05


@pytest.mark.parametrize("dtype, vocab, expected", [
    ("lng", 5, "unknown dtype 'lng'; did you mean 'long'? (allowed: float, long)"),
    ("long", None, "--dtype long needs --vocab N: the number of token ids the model's embedding accepts"),
    ("long", 0, "vocab must be an integer in [1, inf], got 0"),
    ("float", 10, "--vocab is only used with --dtype long (integer token ids)"),
])
def test_make_inputs_rejects_bad_kinds(dtype, vocab, expected):
    with pytest.raises(ValidationError) as err:
        make_inputs((2, 3), dtype, vocab)
    assert str(err.value) == expected


def test_load_data_keeps_ids_and_reads_several_arrays_as_keywords(tmp_path):
    ids = np.random.default_rng(0).integers(0, 50, (10, 6))
    np.save(tmp_path / "ids.npy", ids)
    got = load_data(tmp_path / "ids.npy", 4)
    assert got.dtype == torch.int64 and torch.equal(got, torch.as_tensor(ids[:4]))
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    assert load_data(tmp_path / "x.npy", 8).dtype == torch.float32
    mask = np.ones((10, 6), dtype=np.int64)
    np.savez(tmp_path / "batch.npz", input_ids=ids, attention_mask=mask)
    batch = load_data(tmp_path / "batch.npz", 5)
    assert list(batch) == ["input_ids", "attention_mask"] and batch["input_ids"].shape == (5, 6)
    np.savez(tmp_path / "one.npz", x=np.ones((3, 2), dtype=np.float32))
    assert isinstance(load_data(tmp_path / "one.npz", 8), torch.Tensor)
    np.savez(tmp_path / "bad.npz", a=np.ones((3, 2)), b=np.ones((4, 2)))
    with pytest.raises(DataError, match=r"different numbers of rows: \{'a': 3, 'b': 4\}"):
        load_data(tmp_path / "bad.npz", 8)


def test_with_dtype_long_casts_whole_numbers_only_and_float_casts_everything():
    assert torch.equal(with_dtype(torch.tensor([[1.0, 2.0]]), "long"), torch.tensor([[1, 2]]))
    pixels = with_dtype((torch.tensor([[0, 255]], dtype=torch.uint8), torch.tensor([True])), "float")
    assert [t.dtype for t in pixels] == [torch.float32, torch.float32] and pixels[0].tolist() == [[0.0, 255.0]]
    kw = with_dtype({"input_ids": torch.tensor([[3.0]]), "mask": torch.tensor([[1]])}, "long")
    assert kw["input_ids"].dtype == torch.int64
    with pytest.raises(DataError, match=r"data \[input_ids\] holds values that are not whole numbers"):
        with_dtype({"input_ids": torch.tensor([[0.5]])}, "long")


def test_diagnose_takes_keyword_inputs_and_a_dict_output():
    torch.manual_seed(0)
    model = TinyLM()
    ids = make_inputs((4, 16), "long", vocab=50, generator=0)
    mask = torch.ones(4, 16)
    mask[:, 8:] = 0
    full = diagnose(model, {"input_ids": ids})
    masked = diagnose(model, {"input_ids": ids, "attention_mask": mask})
    assert full.input_shape == (4, 16)
    assert [s.name for s in full.layers if s.weighted] == ["embed", "hidden", "head"]  # the embedding is measured too
    assert full.layer("head").units == 50  # the logits were measured, not the "hidden" entry
    # the mask reached the forward: half the positions feed zeros into the head
    assert masked.layer("hidden").std == pytest.approx(full.layer("hidden").std, rel=1e-6)
    assert masked.loss != full.loss
    picked = diagnose(model, {"input_ids": ids}, output="hidden")
    assert picked.loss != full.loss and picked.layer("head").grad_norm == 0.0  # the head is not in the loss


def test_diagnose_takes_a_tuple_and_a_tuple_output():
    class Both(TwoInputs):
        def forward(self, x, y):
            return (self.a(x), self.b(y))

    model = Both()
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    first = diagnose(model, (x, y))
    second = diagnose(model, (x, y), output="1")
    assert first.input_shape == (8, 3)
    assert first.layer("a").grad_norm > 0 and first.layer("b").grad_norm == 0.0
    assert second.layer("b").grad_norm > 0 and second.layer("a").grad_norm == 0.0


def test_diagnose_on_a_tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=200, n_positions=32,
                                       bos_token_id=0, eos_token_id=0))
    ids = make_inputs((2, 16), "long", vocab=200, generator=0)
    diag = diagnose(model, {"input_ids": ids, "attention_mask": torch.ones(2, 16, dtype=torch.long)})
    assert diag.input_shape == (2, 16)
    assert diag.layer("lm_head").units == 200 and diag.layer("lm_head").grad_norm > 0
    with pytest.raises(ValidationError, match=r"float32 \(2, 16\).*--dtype long --vocab N"):
        diagnose(model, ids.float())
