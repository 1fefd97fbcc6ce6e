"""The one tracer (issue 18.1, 18.4; issue 19.2, 19.3): scoped dispatch patch, activations measured
by behaviour (no history), attention wherever a softmax over q·k is computed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

import initlab
from initlab.diagnostics import thresholds as T
from initlab.trace import block_groups, composite_bypass, repeated_blocks, role
from modules import Act

SRC = str(Path(__file__).resolve().parents[1] / "src")




def _mlp(fn, depth: int, width: int, std: float, seed: int) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        with torch.no_grad():
            lin.weight.normal_(0.0, std, generator=g)
            lin.bias.zero_()
        layers += [lin, Act(fn)]
    head = nn.Linear(width, 1)
    with torch.no_grad():
        head.weight.normal_(0.0, 1 / math.sqrt(width), generator=g)
        head.bias.zero_()
    return nn.Sequential(*layers, head)


# -- scoped, thread-safe patch ----------------------------------------------------------------
def test_composite_bypass_is_per_thread_and_restored():
    original = F.has_torch_function
    t = torch.ones(2)
    entered, release, seen = threading.Event(), threading.Event(), {}

    def other():
        with composite_bypass(), TorchFunctionMode():
            seen["bypassed"] = F.has_torch_function((t,))
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=other)
    worker.start()
    assert entered.wait(10)
    with TorchFunctionMode():  # this thread is not bypassed while the other is
        assert F.has_torch_function((t,)) is True
    release.set()
    worker.join(10)
    assert seen["bypassed"] is False
    assert F.has_torch_function is original  # the last user out restores torch's own function


def _mha_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
            self.head = nn.Linear(16, 1)

        def forward(self, x):
            return self.head(self.attn(x, x, x)[0])

    return M()


def test_two_threads_trace_multihead_attention_at_once():
    models = [_mha_model(0), _mha_model(1)]
    xs = [torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    alone = [initlab.diagnose(m, x).to_dict() for m, x in zip(models, xs, strict=False)]
    results: dict[int, dict] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(i):
        try:
            start.wait(10)
            for _ in range(3):
                results[i] = initlab.diagnose(models[i], xs[i]).to_dict()
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    original = torch._C._has_torch_function  # torch's own (F.has_torch_function is it)
    assert F.has_torch_function is original
    for i in range(2):
        # the projections inside F.multi_head_attention_forward were seen: in_proj and out_proj rows
        names = [row["name"] for row in results[i]["layers"]]
        assert "attn.in_proj" in names and "attn.out_proj" in names
        assert len(results[i]["attention"]) == 1 and results[i]["attention"][0]["heads"] == 4
        assert json.dumps(results[i], sort_keys=True) == json.dumps(alone[i], sort_keys=True)


# -- repeated blocks and roles are public --------------------------------------------------------
def test_repeated_blocks_and_roles():
    block = lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU())  # noqa: E731
    model = nn.Sequential(nn.Linear(2, 4), nn.Sequential(block(), block(), block()), nn.Linear(4, 1))
    assert repeated_blocks(model) == {"1.0": "1.*", "1.1": "1.*", "1.2": "1.*"}
    assert role("1.2.0", repeated_blocks(model)) == "1.*.0"
    assert list(block_groups(model).values()) == [["1.0", "1.1", "1.2"]]


# -- activations known by behaviour: no history -------------------------------------------------
def _he_relu_act(seed: int = 0) -> nn.Sequential:
    return _mlp(torch.relu, 8, 32, math.sqrt(2 / 32), seed)


_SCRIPT = textwrap.dedent("""
    import json, math, sys, torch
    from torch import nn
    sys.path.insert(0, {src!r}); sys.path.insert(0, {tests!r})
    import initlab
    from test_trace import _he_relu_act
    x = torch.randn(128, 32, generator=torch.Generator().manual_seed(5))
    print(json.dumps(initlab.diagnose(_he_relu_act(), x).to_dict(), sort_keys=True))
""")


def test_diagnosis_does_not_depend_on_what_was_diagnosed_before():
    x = torch.randn(128, 32, generator=torch.Generator().manual_seed(5))
    fresh = subprocess.run([sys.executable, "-c", _SCRIPT.format(src=SRC, tests=str(Path(__file__).parent))],
                           capture_output=True, text=True, check=True).stdout.strip()
    others = [_mlp(torch.tanh, 6, 32, 1 / math.sqrt(32), 1), _mlp(torch.relu, 6, 32, 0.5, 2),
              _mlp(torch.sigmoid, 5, 32, 0.3, 3), _mlp(torch.tanh, 4, 32, 2.0, 4), _mlp(torch.sin, 6, 32, 0.2, 5),
              _mlp(lambda t: torch.relu(t) ** 2, 4, 32, 0.2, 6), _mlp(F.gelu, 5, 32, 0.3, 7),
              _mlp(torch.tanh, 8, 32, 3.0, 8), _mlp(F.silu, 5, 32, 0.2, 9), _mlp(torch.relu, 3, 32, 0.01, 10)]
    assert sum(isinstance(m[1], Act) and m[1].fn is torch.tanh for m in others) == 3
    for m in others:
        initlab.diagnose(m, x)
    after = json.dumps(initlab.diagnose(_he_relu_act(), x).to_dict(), sort_keys=True)
    assert after == fresh
    hidden = [row for row in json.loads(after)["layers"] if row["activation"] == "Act"]
    # measured from the function itself: ReLU-like, so He's gain and no saturation check
    assert all(row["gain"] == math.sqrt(2) and not row["saturable"] for row in hidden)


def test_relu_then_tanh_wrappers_each_measured_saturation_reported():
    """Issue 19.2: Act(relu) layers then Act(tanh) layers, weight std 8/sqrt(64)."""
    acts = [torch.relu] * 5 + [torch.tanh] * 5
    model = nn.Sequential(*[m for fn in acts for m in (nn.Linear(64, 64), Act(fn))], nn.Linear(64, 1))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for lin in model[::2]:
            lin.weight.normal_(0.0, 8 / math.sqrt(64), generator=g)
            lin.bias.zero_()
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    diag = initlab.diagnose(model, x)
    # independently: the tanh layers' outputs, with a plain forward
    h, saturated_tanh = x, []
    with torch.no_grad():
        for i in range(10):
            h = model[2 * i](h)
            h = torch.relu(h) if i < 5 else torch.tanh(h)
            if i >= 5:
                saturated_tanh.append(float((h.abs() > 0.98).float().mean()))
    assert min(saturated_tanh[1:]) > 0.7  # 76-78% of the tanh outputs at |a| > 0.98
    rows = [s for s in diag.layers if s.weighted][:10]
    assert [s.saturable for s in rows] == [False] * 5 + [True] * 5
    for s, frac in zip(rows[5:], saturated_tanh, strict=False):
        # saturated by slope (tanh' < 0.04 tanh'(0)) is |a| > 0.9798: the same outputs up to that margin
        assert abs(s.saturated_fraction - frac) < 0.02
    assert "saturation" in diag.codes
    sat = next(v for v in diag.verdicts if v.code == "saturation")
    assert set(sat.layers) == {s.name for s in rows[5:]}


# -- attention wherever it is computed ------------------------------------------------------------
class FoldedAttention(nn.Module):
    """Hand-written attention, heads folded into the batch: (B*H, T, S).softmax(-1)."""

    def __init__(self, d: int = 32, heads: int = 4, temperature: float = 60.0):
        super().__init__()
        self.qkv, self.out, self.head = nn.Linear(d, 3 * d), nn.Linear(d, d), nn.Linear(d, 1)
        self.heads, self.temperature = heads, temperature

    def logits(self, x):
        b, t, d = x.shape
        q, k, _ = self.qkv(x).chunk(3, dim=-1)
        fold = lambda u: u.reshape(b, t, self.heads, d // self.heads).transpose(1, 2).reshape(b * self.heads, t, -1)  # noqa: E731
        return torch.bmm(fold(q), fold(k).transpose(1, 2)) * self.temperature / math.sqrt(d // self.heads)

    def forward(self, x):
        b, t, d = x.shape
        _, _, v = self.qkv(x).chunk(3, dim=-1)
        v = v.reshape(b, t, self.heads, d // self.heads).transpose(1, 2).reshape(b * self.heads, t, -1)
        p = self.logits(x).softmax(-1)  # (B*H, T, S)
        o = torch.bmm(p, v).reshape(b, self.heads, t, -1).transpose(1, 2).reshape(b, t, d)
        return self.head(self.out(o))


def test_attention_with_heads_folded_into_the_batch_is_measured():
    torch.manual_seed(0)
    model = FoldedAttention()
    x = torch.randn(4, 10, 32, generator=torch.Generator().manual_seed(3))
    diag = initlab.diagnose(model, x)
    with torch.no_grad():  # independent: the fraction of queries with max prob >= 0.9
        top = model.logits(x).softmax(-1).amax(-1)
        collapsed = float((top >= 0.9).float().mean())
        logits = model.logits(x)
        entropy = float((-(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1) / math.log(10)).mean())
    assert collapsed > 0.5
    assert len(diag.attention) == 1
    att = diag.attention[0]
    assert att["layout"] == "folded" and att["keys"] == 10
    assert abs(att["collapsed_fraction"] - collapsed) < 1e-6
    assert abs(att["entropy"] - entropy) < 1e-4
    assert "attention_collapse" in diag.codes and collapsed >= T.COLLAPSED_FRACTION
    assert diag.coverage.complete and diag.coverage.computations["attention"] == 1


def test_softmax_not_seen_as_attention_is_said_in_coverage():
    class Odd(nn.Module):  # a (B, T, S) softmax whose logits come from an elementwise product initlab does not follow
        def __init__(self):
            super().__init__()
            self.q, self.k, self.head = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 1)

        def forward(self, x):
            scores = (self.q(x).unsqueeze(2) * self.k(x).unsqueeze(1)).sum(-1)  # (B, T, T)
            return self.head(scores.softmax(-1) @ x)

    diag = initlab.diagnose(Odd(), torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0)))
    cov = diag.coverage
    assert cov.measured_tensors == cov.tensors and not cov.complete
    assert [(c["op"], c["shape"]) for c in cov.unmeasured_computations] == [("softmax", [2, 5, 5])]
    assert "softmax over (2, 5, 5)" in cov.sentence()


def test_a_tied_output_head_is_no_attention():
    class Tied(nn.Module):  # logits = x @ W_emb^T, then a softmax over (B, T, vocab): not attention
        def __init__(self):
            super().__init__()
            self.emb, self.mix = nn.Embedding(20, 8), nn.Linear(8, 8)

        def forward(self, ids):
            return (torch.tanh(self.mix(self.emb(ids))) @ self.emb.weight.t()).softmax(-1)

    diag = initlab.diagnose(Tied(), torch.randint(0, 20, (2, 6), generator=torch.Generator().manual_seed(0)))
    assert diag.attention == []
    assert [c["shape"] for c in diag.coverage.unmeasured_computations] == [[2, 6, 20]]


def test_sdpa_on_three_axes_is_measured():
    class Sdpa(nn.Module):  # F.scaled_dot_product_attention on (B*H, T, d) inputs, logits x60
        def __init__(self):
            super().__init__()
            self.qkv, self.head = nn.Linear(16, 48), nn.Linear(16, 1)

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            return self.head(F.scaled_dot_product_attention(q, k, v, scale=60 / 4))

    torch.manual_seed(1)
    model, x = Sdpa(), torch.randn(6, 9, 16, generator=torch.Generator().manual_seed(2))
    diag = initlab.diagnose(model, x)
    with torch.no_grad():
        q, k, _ = model.qkv(x).chunk(3, dim=-1)
        top = torch.softmax(q @ k.transpose(1, 2) * 15, dim=-1).amax(-1)
    assert len(diag.attention) == 1 and diag.attention[0]["layout"] == "folded"
    assert abs(diag.attention[0]["collapsed_fraction"] - float((top >= 0.9).float().mean())) < 1e-6
