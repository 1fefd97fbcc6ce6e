"""A residual MLP without normalization, with Fixup's scalar biases and multipliers.

The fully connected counterpart of Fixup's basic block (Zhang, Dauphin & Ma, 2019, "Fixup
Initialization: Residual Learning Without Normalization", Figure 1 and its code): a block
with ``m`` Linear layers (no bias vectors) computes::

    h = x
    for i in 1..m:   h = W_i (h + a_i);  if i < m:  h = relu(h + b_i)
    out = relu(x + s * h + b_out)

with scalar biases ``a_i``, ``b_i``, ``b_out`` (0 at init) and a scalar multiplier ``s`` (1 at
init). With ``s = 1`` and the scalars at 0 it is a plain residual block, so the same model serves
He initialization (``initlab.apply_init(model, "he_normal")``) and Fixup
(:func:`initlab.initializers.fixup.fixup_init`).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .._rng import make_generator
from .._validation import check_int
from .mlp import default_linear

__all__ = ["ResidualBlock", "ResidualMLP"]


def _scalar(value: float) -> nn.Parameter:
    return nn.Parameter(torch.full((1,), float(value)))


class ResidualBlock(nn.Module):
    """``x -> relu(x + s * branch(x) + b_out)``: a branch of ``branch_layers`` bias-free Linear layers."""

    def __init__(self, width: int, branch_layers: int = 2, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.width = check_int("width", width, 1)
        self.branch_layers = check_int("branch_layers", branch_layers, 2)  # Fixup's m >= 2
        gen = make_generator(generator if generator is not None else 0)
        self.linears = nn.ModuleList()
        for _ in range(self.branch_layers):
            layer = default_linear(width, width, gen)
            layer.bias = None  # type: ignore[assignment]  # torch allows None (the stub says Parameter); the scalar biases below replace the vectors
            self.linears.append(layer)
        self.bias_in = nn.ParameterList(_scalar(0.0) for _ in range(self.branch_layers))  # before each Linear
        self.bias_act = nn.ParameterList(_scalar(0.0) for _ in range(self.branch_layers - 1))  # before each relu
        self.scale = _scalar(1.0)  # the branch's multiplier
        self.bias_out = _scalar(0.0)  # before the block's relu

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch ``(N, width) -> (N, width)``, without the multiplier."""
        h = x
        for i, layer in enumerate(self.linears):
            h = layer(h + self.bias_in[i])
            if i < self.branch_layers - 1:
                h = torch.relu(h + self.bias_act[i])
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.scale * self.branch(x) + self.bias_out)


class ResidualMLP(nn.Module):
    """``in -> width`` (Linear + relu), ``num_blocks`` residual blocks, ``width -> n_out`` classifier.

    ``forward`` returns logits; ``features(x)`` the last block's output (the classifier's input).
    Parameters start as ``nn.Linear``'s default, drawn from ``generator`` (an int seed or a
    ``torch.Generator``), never from torch's global RNG; set a scheme with ``apply_init`` or
    ``fixup_init``. No normalization layer anywhere: the point of Fixup.
    """

    def __init__(self, in_features: int, width: int, num_blocks: int, n_out: int, branch_layers: int = 2,
                 generator: torch.Generator | int | None = 0) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, 1)
        self.width = check_int("width", width, 1)
        self.num_blocks = check_int("num_blocks", num_blocks, 1)
        self.n_out = check_int("n_out", n_out, 1)
        self.branch_layers = check_int("branch_layers", branch_layers, 2)
        gen = make_generator(generator)
        self.stem = default_linear(in_features, width, gen)
        self.blocks = nn.ModuleList(ResidualBlock(width, branch_layers, gen) for _ in range(num_blocks))
        self.bias_head = _scalar(0.0)  # Fixup's scalar bias before the classifier
        self.head = default_linear(width, n_out, gen)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output ``(N, width)``."""
        h = torch.relu(self.stem(x))
        for block in self.blocks:
            h = block(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.head(self.features(x) + self.bias_head))  # Module calls are Any
