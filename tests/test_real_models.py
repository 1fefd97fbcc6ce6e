"""diagnose on real models built from code or config (random weights, no download).

For each model: every parameter tensor is either measured by a row (or a normalisation record)
or listed as unattributed with a reason, and one verdict or measurement agrees with a number
computed here with plain forward hooks, independently of initlab.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab import apply_init, diagnose

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_coverage(model: nn.Module, diag, unattributed: set[str] = frozenset()) -> None:
    """Every parameter is measured or listed with a reason; the counts add up; only ``unattributed`` is missing."""
    names = dict(model.named_parameters())
    measured = {p for s in diag.layers for p in s.params} | {p for n in diag.norms for p in n["params"]}
    listed = {u["name"]: u for u in diag.coverage.unattributed}
    assert set(names) == (measured & set(names)) | set(listed)
    assert not (measured & set(listed))
    assert set(listed) == set(unattributed)
    assert all(u["reason"] for u in listed.values())
    cov = diag.coverage
    assert cov.tensors == len(names)
    assert cov.measured_tensors == len(names) - len(listed)
    assert cov.parameters == sum(p.numel() for p in names.values())
    assert cov.measured_parameters == cov.parameters - sum(names[n].numel() for n in listed)
    assert f"measured {cov.measured_tensors} of {cov.tensors} parameter tensors" in cov.sentence()


def _outputs(modules: dict[str, nn.Module]) -> tuple[dict[str, torch.Tensor], list]:
    """Forward hooks (written here, not initlab's) keeping each module's output (first tensor)."""
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for name, m in modules.items():
        def hook(mod, args, out, name=name):
            seen[name] = (out[0] if isinstance(out, tuple) else out).detach()
        handles.append(m.register_forward_hook(hook))
    return seen, handles


def _entropy(logits: torch.Tensor) -> float:
    """Mean over rows with >= 2 allowed keys of H(softmax) / log(allowed keys); -inf = masked."""
    logits = logits.detach()
    p = torch.softmax(logits, dim=-1)
    n = torch.isfinite(logits).sum(-1)
    h = -(p * p.clamp_min(1e-30).log()).sum(-1)
    keep = n >= 2
    return float((h[keep] / n[keep].float().log()).mean())


# -- GPT-2 ------------------------------------------------------------------------------------------

def _gpt2(n_layer: int = 4):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=n_layer, n_embd=64, n_head=4, vocab_size=200, n_positions=64))


@pytest.mark.slow  # a Hugging Face model built and diagnosed (7-10 s on 2 busy cores)
def test_gpt2_every_weight_is_measured_and_roles_compare_like_with_like():
    model = _gpt2()
    ids = torch.randint(0, 200, (4, 16), generator=_gen())
    blocks = {f"h{i}": model.transformer.h[i] for i in range(4)}
    fcs = {f"act{i}": model.transformer.h[i].mlp.act for i in range(4)}
    ln1 = {f"ln{i}": model.transformer.h[i].ln_1 for i in range(4)}
    seen, handles = _outputs({**blocks, **fcs, **ln1})
    diag = diagnose(model, {"input_ids": ids})
    for h in handles:
        h.remove()
    _assert_coverage(model, diag)
    kinds = {s.kind for s in diag.layers if s.weighted}
    assert {"Embedding", "Conv1D", "Linear"} <= kinds  # wte/wpe, the 16 Conv1D, the tied lm_head
    assert sum(s.kind == "Conv1D" for s in diag.layers) == 16
    # GELU's tanh form is one activation named by its class, not 4 "tanh" layers
    assert not any(s.activation == "tanh" or "tanh" in s.name for s in diag.layers)
    fc = [s for s in diag.layers if s.role == "transformer.h.*.mlp.c_fc"]
    assert [s.activation for s in fc] == ["NewGELUActivation"] * 4
    assert fc[0].gain == pytest.approx(math.sqrt(2))  # matched to gelu on a grid
    # the c_fc rows' std is the activation output std measured by the hooks here
    for i, s in enumerate(fc):
        assert s.std == pytest.approx(float(seen[f"act{i}"].std()), rel=1e-4)
    # residual stream after each block, measured here
    assert [b["output_std"] for b in diag.blocks] == pytest.approx([float(seen[f"h{i}"].std()) for i in range(4)], rel=1e-4)
    # attention entropy of block 0, recomputed here from c_attn's weights (causal, 4 heads of 16)
    x = seen["ln0"]
    attn = model.transformer.h[0].attn.c_attn
    q, k, _ = (x @ attn.weight + attn.bias).split(64, dim=-1)
    q, k = (t.reshape(4, 16, 4, 16).transpose(1, 2) for t in (q, k))
    logits = (q @ k.transpose(-1, -2)) / 4.0
    logits = logits.masked_fill(~torch.ones(16, 16, dtype=torch.bool).tril(), float("-inf"))
    assert diag.attention[0]["entropy"] == pytest.approx(_entropy(logits), abs=1e-4)
    # GPT-2's init: std 0.02 weights, so attention is close to uniform and the stream stays level
    assert diag.attention[0]["entropy"] > 0.99
    ratio = float(seen["h3"].std()) / float(seen["h0"].std())
    assert 1e-2 < ratio < 1e2 and diag.codes == ["healthy"]
    assert "measured 52 of 52 parameter tensors" in diag.verdicts[0].message


# -- BERT -------------------------------------------------------------------------------------------

def test_bert_depth_trends_compare_one_role_across_layers():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(num_hidden_layers=4, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                                 vocab_size=200, max_position_embeddings=64))
    ids = torch.randint(0, 200, (4, 16), generator=_gen())
    queries = {f"q{i}": model.encoder.layer[i].attention.self.query for i in range(4)}
    seen, handles = _outputs(queries)
    diag = diagnose(model, {"input_ids": ids})
    for h in handles:
        h.remove()
    _assert_coverage(model, diag)
    assert sum(s.kind == "Embedding" for s in diag.layers) == 3  # word, position, token type
    # per role nothing changes with depth (measured here on the queries), so no depth verdict
    q_ratio = float(seen["q3"].std()) / float(seen["q0"].std())
    assert 0.5 < q_ratio < 2
    assert diag.codes == ["healthy"]
    rows = [s for s in diag.layers if s.role == "encoder.layer.*.attention.self.query"]
    assert [s.std for s in rows] == pytest.approx([float(seen[f"q{i}"].std()) for i in range(4)], rel=1e-4)
    assert len(diag.attention) == 4


# -- nn.TransformerEncoder --------------------------------------------------------------------------

def test_transformer_encoder_sees_the_attention_projections_called_through_f_linear():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
    x = torch.randn(4, 16, 64, generator=_gen())
    diag = diagnose(model, x)
    _assert_coverage(model, diag)
    assert {s.name for s in diag.layers if s.weighted} >= {f"layers.{i}.self_attn.{p}" for i in range(4)
                                                           for p in ("in_proj", "out_proj")}
    # layer 0's attention entropy, recomputed here from in_proj_weight
    attn = model.layers[0].self_attn
    q, k, _ = nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias).detach().chunk(3, dim=-1)
    q, k = (t.reshape(4, 16, 4, 16).transpose(1, 2) for t in (q, k))
    logits = q @ k.transpose(-1, -2) / 4.0
    assert diag.attention[0]["entropy"] == pytest.approx(_entropy(logits), abs=1e-4)
    assert diag.attention[0]["logit_std"] == pytest.approx(float(logits.std()), rel=1e-3)
    assert "attention_collapse" not in diag.codes


def test_attention_scaled_up_at_init_collapses_onto_one_key():
    torch.manual_seed(0)
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True), 2,
                                  enable_nested_tensor=False)
    with torch.no_grad():
        for layer in model.layers:
            layer.self_attn.in_proj_weight[:128].mul_(8)  # queries and keys x8: logits x64
    x = torch.randn(4, 16, 64, generator=_gen())
    diag = diagnose(model, x)
    attn = model.layers[0].self_attn
    q, k, _ = nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias).detach().chunk(3, dim=-1)
    q, k = (t.reshape(4, 16, 4, 16).transpose(1, 2) for t in (q, k))
    top = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1).amax(-1)
    collapsed = float((top >= 0.9).float().mean())  # measured here
    assert diag.attention[0]["collapsed_fraction"] == pytest.approx(collapsed, abs=1e-6)
    assert collapsed >= 0.5 and diag.codes[0] == "attention_collapse"
    assert "layers.0.self_attn" in diag.verdicts[0].layers


# -- LSTM -------------------------------------------------------------------------------------------

class _LSTMHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(16, 32, num_layers=2, batch_first=True)
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0][:, -1])


def test_lstm_weights_are_all_attributed_to_the_recurrent_row():
    torch.manual_seed(0)
    model = _LSTMHead()
    x = torch.randn(8, 10, 16, generator=_gen())
    diag = diagnose(model, x)
    _assert_coverage(model, diag)
    lstm = diag.layer("lstm")
    assert lstm.kind == "LSTM" and lstm.units == 32
    assert len(lstm.params) == 8  # weight_ih/hh and bias_ih/hh of 2 layers
    with torch.no_grad():
        out = model.lstm(x)[0]
    assert lstm.std == pytest.approx(float(out.std()), rel=1e-5)
    assert diag.codes == ["healthy"]


# -- plain stacks: non-finite, a custom activation, VGG-style CNN -----------------------------------

class _ReluSquared(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) ** 2


class _Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def _stack(act: type[nn.Module], depth: int = 50) -> nn.Sequential:
    return nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(64, 64), act())], nn.Linear(64, 1))


def test_a_forward_that_overflows_is_non_finite_never_healthy():
    model = apply_init(_stack(_ReluSquared), "he_normal", generator=0)
    x = torch.randn(32, 64, generator=_gen())
    diag = diagnose(model, x)
    assert diag.codes == ["non_finite"]
    # the first module whose output is not finite, found here module by module (a Linear at an
    # even index; an activation belongs to the Linear before it)
    h, first = x, None
    with torch.no_grad():
        for i, m in enumerate(model):
            h = m(h)
            if not bool(torch.isfinite(h).all()):
                first = i
                break
    assert first is not None
    row = str(first - first % 2)
    assert f"the first at {row}" in diag.verdicts[0].message
    assert ("in the output of its _ReluSquared;" in diag.verdicts[0].message) == (first % 2 == 1)
    assert "overflow" in diag.verdicts[0].fix
    # relu(x)**2 grows like x^2: no weight scale keeps the signal level, so the fix is not "another init"
    assert "grows like x^2 (measured)" in diag.verdicts[0].fix and "he_normal" not in diag.verdicts[0].fix


def test_a_custom_activation_module_is_named_by_its_class_and_gets_the_right_fix():
    torch.manual_seed(0)
    model = _stack(_Swish)
    x = torch.randn(32, 64, generator=_gen())
    diag = diagnose(model, x)
    assert {s.activation for s in diag.layers[:-1]} == {"_Swish"}
    assert diag.layers[0].gain == pytest.approx(math.sqrt(2))  # matches silu on a grid
    # the back-propagated gradient, measured here with retain_grad on each Linear's output
    outs = []

    def keep(mod, args, out):
        out.retain_grad()
        outs.append(out)

    hooks = [m.register_forward_hook(keep) for m in model if isinstance(m, nn.Linear)]
    y = model(x)
    for h in hooks:
        h.remove()
    (y * torch.randn(y.shape, generator=_gen(0))).sum().div(y.shape[0]).backward()
    ratio = float(outs[0].grad.norm()) / float(outs[-2].grad.norm())
    assert ratio < 1e-2 and diag.codes == ["vanishing_gradients"]
    assert "he_normal" in diag.verdicts[0].fix  # larger weights, not smaller


def test_vgg_style_cnn_rate_matches_hooks():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10))
    x = torch.randn(4, 3, 32, 32, generator=_gen())
    seen, handles = _outputs({str(i): model[i] for i in (1, 3, 6, 8)})
    diag = diagnose(model, x)
    for h in handles:
        h.remove()
    _assert_coverage(model, diag)
    rate = (float(seen["8"].std()) / float(seen["1"].std())) ** (1 / 3)
    assert diag.activation_std_rate == pytest.approx(rate, rel=1e-4)
    assert diag.codes == ["healthy"]  # a total change of rate**3, inside [0.01, 100]
    assert 1e-2 < rate ** 3 < 1e2


# -- Hugging Face vision models ---------------------------------------------------------------------

def _image() -> torch.Tensor:
    return torch.randn(4, 3, 32, 32, generator=_gen())


def test_hf_resnet_blocks_and_batchnorms_are_measured():
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    model = ResNetModel(ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[2, 2], layer_type="basic"))
    stage = model.encoder.stages[0].layers
    # each conv layer (conv -> BatchNorm -> ReLU or Identity) of stage 0, and each block's output
    convs = {f"{i}.{j}": stage[i].layer[j] for i in range(2) for j in range(2)}
    seen, handles = _outputs({**{f"b{i}": stage[i] for i in range(2)}, **convs})
    diag = diagnose(model, _image())
    for h in handles:
        h.remove()
    _assert_coverage(model, diag)
    assert sum(n["kind"] == "batch_norm" for n in diag.norms) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    ours = [b for b in diag.blocks if b["group"] == "encoder.stages.0.layers"]
    assert [b["output_std"] for b in ours] == pytest.approx([float(seen[f"b{i}"].std()) for i in range(2)], rel=1e-4)
    # like with like: conv j of block 0 against conv j of block 1, measured by the hooks here
    for j in range(2):
        rows = [diag.layer(f"encoder.stages.0.layers.{i}.layer.{j}.convolution") for i in range(2)]
        assert [r.std for r in rows] == pytest.approx([float(seen[f"{i}.{j}"].std()) for i in range(2)], rel=1e-4)
        assert rows[0].role == rows[1].role == f"encoder.stages.0.layers.*.layer.{j}.convolution"
        assert 1e-2 < float(seen[f"1.{j}"].std()) / float(seen[f"0.{j}"].std()) < 1e2
    assert diag.codes == ["healthy"]


def test_hf_convnext_lists_its_layer_scale_with_the_operation_that_uses_it():
    from transformers import ConvNextConfig, ConvNextModel

    torch.manual_seed(0)
    model = ConvNextModel(ConvNextConfig(hidden_sizes=[16, 32], depths=[2, 2], num_stages=2))
    dw = {f"{s}.{i}": model.encoder.stages[s].layers[i].dwconv for s in range(2) for i in range(2)}
    seen, handles = _outputs(dw)
    diag = diagnose(model, _image())
    for h in handles:
        h.remove()
    for key in dw:  # the depthwise convs' std, measured here, and their change across blocks within a stage
        s_, i = key.split(".")
        assert diag.layer(f"encoder.stages.{s_}.layers.{i}.dwconv").std == pytest.approx(float(seen[key].std()), rel=1e-4)
    assert all(1e-2 < float(seen[f"{s_}.1"].std()) / float(seen[f"{s_}.0"].std()) < 1e2 for s_ in "01")
    scales = {n for n, _ in model.named_parameters() if n.endswith("layer_scale_parameter")}
    assert len(scales) == 4
    _assert_coverage(model, diag, unattributed=scales)
    assert all("Tensor.mul" in u["reason"] for u in diag.coverage.unattributed)
    assert diag.codes == ["healthy"]
    assert "in the measured layers (the others are not judged)" in diag.verdicts[0].message
    assert "measured 42 of 46 parameter tensors" in diag.verdicts[0].message


@pytest.mark.slow  # a Hugging Face model built and diagnosed (7-10 s on 2 busy cores)
def test_hf_vit_attention_and_the_parameters_added_directly():
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    model = ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=3,
                               num_attention_heads=4, intermediate_size=128))
    direct = {n for n, _ in model.named_parameters() if n in ("embeddings.cls_token", "embeddings.position_embeddings")}
    diag = diagnose(model, _image())
    _assert_coverage(model, diag, unattributed=direct)
    assert len(diag.attention) == 3
    assert all(0 < a["entropy"] <= 1 for a in diag.attention)
    assert diag.attention[0]["keys"] == 17  # 16 patches and the class token
    # the doctor report says it: a Coverage section listing both, and the attention table
    from initlab.diagnostics.doctor import DoctorResult
    from initlab.report.doctor import render_html

    page = render_html(DoctorResult("vit.py:make", (4, 3, 32, 32), diag))
    assert "<h2>Coverage</h2>" in page and "measured 54 of 56 parameter tensors" in page
    assert "embeddings.cls_token" in page and "used directly by Tensor.expand" in page
    assert "<h2>Attention</h2>" in page and "layers.2.attention" in page


def test_llama_custom_rmsnorm_and_grouped_query_attention_are_measured():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, vocab_size=200,
                                         max_position_embeddings=64))
    norms = {f"n{i}": model.model.layers[i].input_layernorm for i in range(2)}
    seen, handles = _outputs(norms)
    diag = diagnose(model, {"input_ids": torch.randint(0, 200, (2, 16), generator=_gen())})
    for h in handles:
        h.remove()
    _assert_coverage(model, diag)  # LlamaRMSNorm multiplies by its weight itself: measured by its own hooks
    ours = [n for n in diag.norms if n["kind"] == "LlamaRMSNorm"]
    assert len(ours) == 5  # 2 per layer and the final one
    assert [n["output_std"] for n in ours[:3:2]] == pytest.approx([float(seen[f"n{i}"].std()) for i in range(2)], rel=1e-4)
    assert [(a["heads"], a["keys"]) for a in diag.attention] == [(4, 16), (4, 16)]  # 2 key heads shared by 4
    assert 0 < diag.attention[0]["entropy"] <= 1
