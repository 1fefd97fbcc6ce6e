"""Issue 18 item 3 ("One judgement"), acceptance: on a corpus of models, after each autoinit mode,
``assert_healthy()`` raises exactly when ``diagnose`` (on autoinit's example, with class targets) gives
a depth, saturation, dead, non-finite or output verdict (``thresholds.UNHEALTHY_VERDICTS``).

Run as a script (``PYTHONPATH=src python tests/test_judgement_corpus.py``) to print the table.
"""

from __future__ import annotations

import sys
import time

import pytest
import torch
from torch import nn

import initlab
from initlab import InitlabError
from initlab.autoinit import UnhealthyInitError, autoinit
from initlab.diagnostics.thresholds import UNHEALTHY_VERDICTS
from modules import Act

WIDTH, BATCH, D_IN, CLASSES = 64, 128, 32, 10
UNHEALTHY = set(UNHEALTHY_VERDICTS)




class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class Wrapped(nn.Module):
    """The activation inside a small wrapper module."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x)


def _relu2(x):
    return torch.relu(x) ** 2


def _mlp(act, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(D_IN if i == 0 else WIDTH, WIDTH), act()]
    return nn.Sequential(*layers, nn.Linear(WIDTH, CLASSES))


class Block(nn.Module):
    def __init__(self, act, norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(WIDTH) if norm else nn.Identity()
        self.fc1, self.act, self.fc2 = nn.Linear(WIDTH, WIDTH), act(), nn.Linear(WIDTH, WIDTH)

    def forward(self, x):
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


def _resmlp(act, blocks: int, norm: bool = False) -> nn.Sequential:
    return nn.Sequential(nn.Linear(D_IN, WIDTH), *[Block(act, norm) for _ in range(blocks)], nn.Linear(WIDTH, CLASSES))


def _gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(n_layer=4, n_embd=64, n_head=4, vocab_size=200, n_positions=64,
                                      bos_token_id=0, eos_token_id=0)).eval()


def _cnn() -> nn.Module:
    from transformers import ResNetConfig, ResNetForImageClassification

    return ResNetForImageClassification(ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[2, 2],
                                                     layer_type="basic", num_labels=CLASSES))


CORPUS = {
    "mlp tanh x10": lambda: _mlp(nn.Tanh, 10),
    "mlp tanh x50": lambda: _mlp(nn.Tanh, 50),
    "mlp relu x20": lambda: _mlp(nn.ReLU, 20),
    "mlp relu x40 (wrapper module)": lambda: _mlp(Wrapped, 40),
    "mlp gelu x30": lambda: _mlp(nn.GELU, 30),
    "mlp silu x30": lambda: _mlp(nn.SiLU, 30),
    "mlp sin x10": lambda: _mlp(lambda: Act(torch.sin), 10),
    "mlp sin x50": lambda: _mlp(lambda: Act(torch.sin), 50),
    "mlp sigmoid x10": lambda: _mlp(nn.Sigmoid, 10),
    "mlp sigmoid x30": lambda: _mlp(nn.Sigmoid, 30),
    "mlp relu^2 x10": lambda: _mlp(lambda: Act(_relu2), 10),
    "mlp swish module x30": lambda: _mlp(Swish, 30),
    "mlp Act(tanh) x20": lambda: _mlp(lambda: Act(torch.tanh), 20),
    "residual mlp relu x16": lambda: _resmlp(nn.ReLU, 16),
    "residual mlp pre-LN gelu x16": lambda: _resmlp(nn.GELU, 16, norm=True),
    "gpt2 4x64 (config)": _gpt2,
    "resnet cnn (config)": _cnn,
}
MODES = ("analytic", "empirical")


def _batch(name: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if name.startswith("gpt2"):
        ids = torch.randint(0, 200, (8, 32), generator=g)
        return ids, torch.randint(0, 200, (8, 32), generator=g)
    if name.startswith("resnet"):
        return torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, CLASSES, (16,), generator=g)
    return torch.randn(BATCH, D_IN, generator=g), torch.randint(0, CLASSES, (BATCH,), generator=g)


def _token_loss(out, y):
    return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def judge(name: str, mode: str) -> tuple[list[str], list[str]]:
    """(assert_healthy's problem codes, diagnose's verdict codes) for one model after one autoinit mode."""
    if name.startswith(("gpt2", "resnet")):
        pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = CORPUS[name]()
    x, y = _batch(name, 1)
    try:
        report = autoinit(model, x, mode=mode, generator=0)
    except InitlabError:  # autoinit refused (e.g. LSUV met a non-finite output): the model is left as it was
        problems = ["autoinit refused"]
    else:
        problems = [p.code for p in report.problem_records()]
        try:
            report.assert_healthy()
            assert not problems
        except UnhealthyInitError:
            assert problems
    diag = initlab.diagnose(model, x, y, loss_fn=_token_loss if name.startswith("gpt2") else None)
    return problems, diag.codes


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(CORPUS))
def test_assert_healthy_raises_exactly_when_diagnose_finds_a_problem(name, mode):
    problems, codes = judge(name, mode)
    assert bool(problems) == bool(UNHEALTHY & set(codes)), (problems, codes)


def test_corpus_is_large_and_varied_enough():
    assert len(CORPUS) >= 16


if __name__ == "__main__":
    names = sys.argv[1:] or list(CORPUS)
    print("| model | autoinit mode | assert_healthy | problems | diagnose codes | agree |\n|---|---|---|---|---|---|")
    for name in names:
        for mode in MODES:
            t = time.time()
            problems, codes = judge(name, mode)
            agree = bool(problems) == bool(UNHEALTHY & set(codes))
            print(f"| {name} | {mode} | {'raises' if problems else 'passes'} | {', '.join(problems) or '-'} | "
                  f"{', '.join(codes)} | {'yes' if agree else 'NO'} | <!-- {time.time() - t:.0f}s -->", flush=True)
