"""The false-alarm rate of initlab.verify on models drawn correctly from their recipe.

Six models built from config (GPT-2, BERT, Llama with the "hf" recipe; an MLP, a CNN and a
transformer encoder with an embedding with the "torch" recipe) x 20 seeds. Bonferroni bounds the
family-wise rate by alpha; with positively correlated tests (KS, std, max |z| of one tensor) it is
conservative. Measured at HEAD: 0/120 at alpha 0.01, 1/120 at 0.05, 11/120 at 0.2, 38/120 at 0.5.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab.verify import verify

transformers = pytest.importorskip("transformers")

FACTORIES = {
    "gpt2": (lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=2, n_embd=64, n_head=4, vocab_size=128, n_positions=32, bos_token_id=0, eos_token_id=0)), "hf"),
    "bert": (lambda: transformers.BertForMaskedLM(transformers.BertConfig(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128, vocab_size=128,
        max_position_embeddings=32)), "hf"),
    "llama": (lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
        vocab_size=128, max_position_embeddings=32, pad_token_id=0)), "hf"),
    "mlp": (lambda: nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.LayerNorm(64),
                                  nn.Linear(64, 10)), "torch"),
    "cnn": (lambda: nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3),
                                  nn.Flatten(), nn.Linear(32 * 4, 10)), "torch"),
    "encoder": (lambda: nn.Sequential(nn.Embedding(100, 32, padding_idx=0), nn.TransformerEncoder(
        nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2, enable_nested_tensor=False)), "torch"),
}
ALPHAS = (0.01, 0.05, 0.2, 0.5)
SEEDS = 20


def _fails_at(report, alpha: float) -> bool:
    """The report's verdict at another alpha: an exact or tie failure, or a p-value below alpha/tests."""
    if any(t.ok is False for t in report.ties) or any(p.measured and p.measured.mismatches for p in report.params):
        return True
    ps = [p for c in report.params if c.measured for p in c.measured.p.values()]
    return bool(ps) and min(ps) < alpha / report.tests


@pytest.mark.slow
def test_false_alarm_rate_on_correct_models():
    fails = {a: 0 for a in ALPHAS}
    n = 0
    for name, (build, recipe) in FACTORIES.items():
        for seed in range(SEEDS):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(1000 + seed)
                model = build()
            report = verify(model, recipe, alpha=ALPHAS[0])
            assert report.unmatched == [], (name, report.unmatched)
            assert report.ok == (not _fails_at(report, ALPHAS[0]))
            for a in ALPHAS:
                fails[a] += _fails_at(report, a)
            n += 1
    assert n == len(FACTORIES) * SEEDS == 120
    for a in ALPHAS:  # at most alpha, up to 3 binomial standard deviations
        assert fails[a] <= a * n + 3 * math.sqrt(a * (1 - a) * n), (a, fails)
    assert fails[0.01] == 0  # measured, seeds 1000-1019
