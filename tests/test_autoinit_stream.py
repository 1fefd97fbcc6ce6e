"""autoinit's report checks the stream between repeated blocks (issue 10): a residual stream that
grows more than 2x over the blocks is flagged, with its numbers; a flat one is not.

The stream is measured here with forward hooks (or a hand-written loop) of the test's own, on the
example the init saw, independently of the report's measuring pass.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from initlab.autoinit import UnhealthyInitError, autoinit

LIMIT = 2.0  # the report's default band: max/min of the stream's std over the blocks


def _std(t: torch.Tensor) -> float:
    return float(t.detach().double().std(unbiased=False))


def block_output_stds(model: nn.Module, blocks, example) -> list[float]:
    """The std of each block's output (first tensor), by hooks on the blocks, one plain forward pass."""
    stds: dict[int, float] = {}

    def hook(i):
        def f(_m, _args, out):
            stds.setdefault(i, _std(out[0] if isinstance(out, tuple) else out))
        return f

    handles = [b.register_forward_hook(hook(i)) for i, b in enumerate(blocks)]
    try:
        with torch.no_grad():
            model(**example) if isinstance(example, dict) else model(example)
    finally:
        for h in handles:
            h.remove()
    return [stds[i] for i in range(len(blocks))]


def stream_lines(lines: list[str]) -> list[str]:
    return [w for w in lines if w.startswith("the residual stream")]


def gpt2(n_layer: int):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=n_layer, n_embd=64, n_head=4, vocab_size=100,
                                  bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()  # eval: no dropout, the same pass for the test and the report


@pytest.mark.parametrize("n_layer", [4, 8])
def test_gpt2_empirical_stream_flagged_exactly_when_it_spreads_past_2x(n_layer):
    model = gpt2(n_layer)
    example = {"input_ids": torch.randint(0, 100, (8, 16), generator=torch.Generator().manual_seed(0))}
    report = autoinit(model, example, mode="empirical", generator=0)
    stds = block_output_stds(model, model.transformer.h, example)
    ratio = max(stds) / min(stds)
    (row,) = report.stream
    assert row["names"] == [f"transformer.h.{i}" for i in range(n_layer)] and row["where"] == "after"
    assert row["std"] == pytest.approx(stds, rel=1e-9)
    # 1/sqrt(n_layer) apart, as a stream made by its blocks grows (sqrt(k) after k blocks): 4 blocks
    # stay just inside the band on this example, 8 do not
    assert (ratio > LIMIT) == (n_layer == 8), stds
    flagged = stream_lines(report.warnings)
    assert len(flagged) == (ratio > LIMIT)
    assert stream_lines(report.problems()) == flagged
    if ratio > LIMIT:
        (line,) = flagged
        assert f"grows {ratio:.3g}x over {n_layer} blocks ({stds[0]:.3g} -> {stds[-1]:.3g}" in line
        assert "blocks transformer.h.0 .. transformer.h.7" in line
        assert "scale the embedding or input layer up" in line and "c_proj.weight) down" in line
        with pytest.raises(UnhealthyInitError, match="the residual stream after blocks transformer.h.0"):
            report.assert_healthy()
    else:
        report.assert_healthy()
        # a tighter band flags the same stream, with that band's limit
        assert any(f"grows {ratio:.3g}x" in p and "allowed 1.25" in p
                   for p in stream_lines(report.problems(tol=(0.8, 1.25))))
    d = json.loads(json.dumps(report.to_dict()))
    assert d["stream"][0]["std"] == pytest.approx(stds, rel=1e-9)
    assert f"stream after transformer.h.*: {' '.join(f'{v:.3g}' for v in stds)} (max/min {ratio:.3g})" in report.summary()


class Block(nn.Module):
    """x + fc2(relu(fc1(x))): the block's output is the stream."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))


class Branches(nn.Module):
    """Branch blocks the parent adds to the stream: x = x + block(x)."""

    def __init__(self, n: int = 8, width: int = 64) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
                                    for _ in range(n))

    def forward(self, x):
        for b in self.blocks:
            x = x + b(x)
        return x


def inputs(scale: float) -> torch.Tensor:
    return scale * torch.randn(128, 64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("mode", ["empirical", "analytic"])
def test_flat_residual_mlp_and_encoder_are_not_flagged(mode):
    torch.manual_seed(0)
    resmlp = nn.Sequential(nn.Linear(64, 64), *[Block() for _ in range(8)], nn.Linear(64, 10))
    layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True, norm_first=True)
    encoder = nn.TransformerEncoder(layer, 6, enable_nested_tensor=False)
    tokens = torch.randn(8, 16, 64, generator=torch.Generator().manual_seed(1))
    for model, example, blocks in ((resmlp, inputs(1.0), list(resmlp)[1:9]), (encoder, tokens, encoder.layers)):
        report = autoinit(model, example, mode=mode, generator=0)
        stds = block_output_stds(model, blocks, example)
        assert max(stds) / min(stds) < 1.6, stds  # the stream enters at ~1 and ends near sqrt(2)
        (row,) = report.stream
        assert row["std"] == pytest.approx(stds, rel=1e-9)
        assert stream_lines(report.warnings) == [] and stream_lines(report.problems()) == []
        report.assert_healthy()


@pytest.mark.parametrize("mode", ["empirical", "analytic"])
def test_branch_blocks_small_input_stream_read_where_it_enters_each_block(mode):
    torch.manual_seed(0)
    model = Branches()
    x = inputs(0.05)  # the stream enters at std 0.05: the blocks make it
    report = autoinit(model, x, mode=mode, generator=0)
    stream = []
    with torch.no_grad():
        h = x
        for b in model.blocks:
            stream.append(_std(h))
            h = h + b(h)
    (row,) = report.stream
    assert row["where"] == "before" and row["names"] == [f"blocks.{i}" for i in range(1, 8)]
    assert row["entry_std"] == pytest.approx(stream[0], rel=1e-9)
    assert row["std"] == pytest.approx(stream[1:], rel=1e-9)
    ratio = max(stream[1:]) / min(stream[1:])
    assert ratio > 2.5
    (line,) = stream_lines(report.warnings)
    assert line.startswith(f"the residual stream entering blocks blocks.1 .. blocks.7 grows {ratio:.3g}x over 7 blocks")
    assert f"it enters block blocks.0 at std {stream[0]:.3g}" in line
    with pytest.raises(UnhealthyInitError, match="the residual stream entering"):
        report.assert_healthy()
