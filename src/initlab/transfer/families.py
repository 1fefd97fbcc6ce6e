"""Built-in model families and tasks, written as stacked functions of ``M`` networks at once.

A family turns ``(width, depth, parametrization, seeds)`` into a dict of stacked parameters
(``name -> tensor [M, ...]``, one slice per network) with a :class:`~.parametrizations.Rule` per
name, and a ``forward(params, x)`` that runs all ``M`` networks in one batched matmul per layer.

- ``mlp`` (task ``digits``): sklearn's bundled 8x8 digits, features standardized on the
  training split; ``x -> h = x W_in``; ``depth`` residual blocks ``h <- h + relu(h) W_l``;
  logits ``relu(h) W_out``. No biases (muP treats them as vectors with lr 1: nothing to learn
  about width from them).
- ``transformer`` (task ``sequence``): a pre-LN decoder (Radford et al. 2019 layout, LayerNorm
  without affine) of ``depth`` blocks, 4 heads of ``width/4``, MLP ``4 width``, GELU, learned
  positions, trained by next-token prediction on sequences of a fixed random Markov chain
  (vocabulary 32, length 16, sparse transitions drawn once from ``data_seed``: no downloads).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .._rng import make_generator
from .parametrizations import Parametrization, Rule

__all__ = ["Task", "digits_task", "sequence_task", "FAMILIES", "TASKS", "build_family", "HEADS", "VOCAB", "SEQ_LEN"]

HEADS = 4
VOCAB = 32
SEQ_LEN = 16
CLASSES = 10


@dataclass
class Task:
    """Training data of a task. ``x`` (N, ...) and ``y`` (N, ...) on CPU; ``kind`` "digits" or "sequence"."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor
    n_in: int  # input features (digits) or vocabulary (sequence)
    n_out: int  # classes or vocabulary


def digits_task(data_seed: int = 0, validation_split: float = 0.2) -> Task:
    """Digits: the first 80% of a shuffle (``data_seed``) train, the loss is measured on that training split."""
    from ..datasets.bundled import digits

    X, y = digits(seed=data_seed)
    n_train = int(round(len(y) * (1 - validation_split)))
    mean, std = X[:n_train].mean(0), X[:n_train].std(0)
    X = (X - mean) / np.where(std > 0, std, 1.0)
    x, t = torch.from_numpy(X[:n_train].astype(np.float32)), torch.from_numpy(y[:n_train])
    return Task("digits", x, t, x, t, X.shape[1], CLASSES)


def sequence_task(data_seed: int = 0, n_train: int = 4096, n_eval: int = 256) -> Task:
    """Next-token prediction on a Markov chain over :data:`VOCAB` tokens: each token's successor is
    drawn from a Dirichlet(0.1) row (a few likely successors), start tokens uniform."""
    g = np.random.default_rng(data_seed)
    trans = g.dirichlet(np.full(VOCAB, 0.1), size=VOCAB)
    cum = np.cumsum(trans, axis=1)
    n = n_train + n_eval
    seqs = np.empty((n, SEQ_LEN + 1), dtype=np.int64)
    seqs[:, 0] = g.integers(0, VOCAB, n)
    u = g.random((n, SEQ_LEN))
    for t in range(SEQ_LEN):
        seqs[:, t + 1] = np.minimum((u[:, t, None] > cum[seqs[:, t]]).sum(1), VOCAB - 1)
    s = torch.from_numpy(seqs)
    return Task("sequence", s[:n_train, :-1], s[:n_train, 1:], s[n_train:, :-1], s[n_train:, 1:], VOCAB, VOCAB)


TASKS: dict[str, Callable[[int], Task]] = {"digits": digits_task, "sequence": sequence_task}


#: a family's forward: (stacked parameters, batch [M, B, ...]) -> logits [M, B, ...]
Forward = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


# -- the stacked networks -------------------------------------------------------------------------

def _draw(shapes: Mapping[str, tuple[int, ...]], rules: dict[str, Rule], seeds: list[int], width: int,
          depth: int) -> dict[str, torch.Tensor]:
    """Stacked parameters [M, ...]: network j draws every tensor from one generator of its seed
    (the same standard-normal draws at every learning rate and parametrization)."""
    per_seed: dict[int, dict[str, torch.Tensor]] = {}
    for s in dict.fromkeys(seeds):
        g = make_generator(int(s) * 1_000_003 + width * 101 + depth)
        per_seed[s] = {name: torch.randn(shape, generator=g) * rules[name].std for name, shape in shapes.items()}
    return {name: torch.stack([per_seed[s][name] for s in seeds]).requires_grad_(True) for name in shapes}


def _rules(spec: Parametrization, table: dict[str, tuple[str, int, int, bool, bool]], width: int, base_width: int, depth: int,
           base_depth: int) -> dict[str, Rule]:
    out: dict[str, Rule] = {}
    for name, (role, fan_in, fan_out, branch, block) in table.items():
        std, lr = spec.rule(role, fan_in, fan_out, width / base_width, depth / base_depth, branch, block)
        out[name] = Rule(name, role, fan_in, fan_out, std, lr, branch, block)
    return out


def mlp(spec: Parametrization, task: Task, width: int, depth: int, base_width: int, base_depth: int,
        seeds: list[int]) -> tuple[dict[str, torch.Tensor], dict[str, Rule], Forward]:
    """The residual MLP of the module docstring; weights stored as [M, in, out]."""
    table = {"w_in": ("input", task.n_in, width, False, False)}
    table.update({f"w{i}": ("hidden", width, width, True, True) for i in range(depth)})
    table["w_out"] = ("readout", width, task.n_out, False, False)
    shapes = {name: (fan_in, fan_out) for name, (_, fan_in, fan_out, _, _) in table.items()}
    rules = _rules(spec, table, width, base_width, depth, base_depth)

    def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = torch.bmm(x, p["w_in"])  # (M, B, width)
        for i in range(depth):
            h = h + torch.bmm(torch.relu(h), p[f"w{i}"])
        return torch.bmm(torch.relu(h), p["w_out"])  # (M, B, classes)

    return _draw(shapes, rules, seeds, width, depth), rules, forward


def transformer(spec: Parametrization, task: Task, width: int, depth: int, base_width: int, base_depth: int,
                seeds: list[int]) -> tuple[dict[str, torch.Tensor], dict[str, Rule], Forward]:
    """The pre-LN decoder of the module docstring; matrices stored as [M, in, out]."""
    d, v, T = width, task.n_in, SEQ_LEN
    table = {"embed": ("input", 1, d, False, False), "pos": ("input", 1, d, False, False)}
    for i in range(depth):
        table.update({f"b{i}.qkv": ("hidden", d, 3 * d, False, True), f"b{i}.proj": ("hidden", d, d, True, True),
                      f"b{i}.fc": ("hidden", d, 4 * d, False, True), f"b{i}.out": ("hidden", 4 * d, d, True, True)})
    table["readout"] = ("readout", d, task.n_out, False, False)
    shapes = {name: (fan_in, fan_out) for name, (_, fan_in, fan_out, _, _) in table.items()}
    shapes["embed"], shapes["pos"] = (v, d), (T, d)
    rules = _rules(spec, table, width, base_width, depth, base_depth)
    head = d // HEADS
    # muP: logits q.k / d_head (Tensor Programs V, sec. 4); SP: / sqrt(d_head). Equal at d_head = 1.
    scale = 1.0 / head if spec.attention_scale == "linear" else 1.0 / math.sqrt(head)
    mask = torch.ones(T, T, dtype=torch.bool).tril()

    def forward(p: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
        M, B, L = tokens.shape
        idx = tokens.reshape(M, B * L, 1).expand(M, B * L, d)
        h = torch.gather(p["embed"], 1, idx).view(M, B, L, d) + p["pos"][:, None, :L]  # (M, B, L, d)
        for i in range(depth):
            a = F.layer_norm(h, (d,)).view(M, B * L, d)
            q, k, val = torch.bmm(a, p[f"b{i}.qkv"]).view(M, B, L, 3, HEADS, head).unbind(3)  # (M, B, L, H, dh)
            att = torch.einsum("mbqhe,mbkhe->mbhqk", q, k) * scale
            att = att.masked_fill(~mask[:L, :L], float("-inf")).softmax(-1)
            o = torch.einsum("mbhqk,mbkhe->mbqhe", att, val).reshape(M, B * L, d)
            h = h + torch.bmm(o, p[f"b{i}.proj"]).view(M, B, L, d)
            a = F.layer_norm(h, (d,)).view(M, B * L, d)
            h = h + torch.bmm(F.gelu(torch.bmm(a, p[f"b{i}.fc"])), p[f"b{i}.out"]).view(M, B, L, d)
        a = F.layer_norm(h, (d,)).view(M, B * L, d)
        return torch.bmm(a, p["readout"]).view(M, B, L, task.n_out)  # (M, B, L, vocab)

    return _draw(shapes, rules, seeds, width, depth), rules, forward


FAMILIES = {"mlp": (mlp, "digits"), "transformer": (transformer, "sequence")}


def build_family(family: str, spec: Parametrization, task: Task, width: int, depth: int, base_width: int,
                 base_depth: int, seeds: list[int]) -> tuple[dict[str, torch.Tensor], dict[str, Rule], Forward]:
    """Stacked parameters, rules and forward of a built-in family (one network per entry of ``seeds``)."""
    return FAMILIES[family][0](spec, task, width, depth, base_width, base_depth, seeds)
