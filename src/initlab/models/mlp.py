"""A plain multi-layer perceptron, the network of the classic experiments."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from .._rng import make_generator
from .._validation import ValidationError, check_choice, check_int
from .activations import make_activation

__all__ = ["MLP", "OUTPUTS"]

# output -> the function that turns logits into probabilities.
OUTPUTS = ("sigmoid", "softmax", "linear")


def default_linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear(n_in, n_out)`` with its default init drawn from ``generator``, not the global RNG."""
    # Built on the meta device (no storage, nothing drawn), then given real tensors. (skip_init
    # does the same through Module.to_empty, whose first call imports torch's reference ops: 0.5 s.)
    layer = nn.Linear(n_in, n_out, device="meta")
    layer.weight = nn.Parameter(torch.empty(n_out, n_in))
    layer.bias = nn.Parameter(torch.empty(n_out))
    bound = 1.0 / math.sqrt(n_in)  # what kaiming_uniform_(a=sqrt(5)) gives, as nn.Linear does
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)  # (out, in)
        layer.bias.uniform_(-bound, bound, generator=generator)  # (out,)
    return layer


class MLP(nn.Sequential):
    """``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with ``activation`` after every hidden layer.

    ``MLP([2, 10, 1], "relu")`` is the classic Keras ``Dense(10, relu, input_dim=2)`` then
    ``Dense(1, sigmoid)``. ``forward`` returns logits (the losses take logits, which is
    numerically stabler); ``predict_proba`` applies the ``output`` function. It is an
    ``nn.Sequential`` of modules named ``hidden1, act1, hidden2, act2, ..., output``.

    The weights and biases start as PyTorch's default for ``nn.Linear``,
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, drawn from ``generator`` (a ``torch.Generator``
    or an int seed; ``None``: a fresh seed from the OS), never from torch's global RNG.
    ``initlab.apply_init`` sets a chosen scheme.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", output: str = "sigmoid",
                 generator: torch.Generator | int | None = None) -> None:
        sizes = [check_int(f"sizes[{i}]", s, 1) for i, s in enumerate(sizes)]
        if len(sizes) < 2:
            raise ValidationError(f"sizes needs at least an input and an output size, got {sizes}")
        output = check_choice("output", output, OUTPUTS)
        gen = make_generator(generator)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-2], sizes[1:-1], strict=False), start=1):
            layers[f"hidden{i}"] = default_linear(n_in, n_out, gen)
            layers[f"act{i}"] = make_activation(activation)
        layers["output"] = default_linear(sizes[-2], sizes[-1], gen)
        super().__init__(layers)
        self.sizes = sizes
        self.activation = activation
        self.output_kind = output  # "output" itself names the last Linear

    @property
    def linears(self) -> list[nn.Linear]:
        """The Linear layers, input to output."""
        return [m for m in self if isinstance(m, nn.Linear)]

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-activation outputs of every hidden layer, each ``(N, units)``."""
        outs = []
        for name, module in self.named_children():
            x = module(x)
            if name.startswith("act"):
                outs.append(x)
        return outs

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities: ``(N,)`` P(class 1) for a sigmoid output, ``(N, K)`` for softmax."""
        logits: torch.Tensor = self(x)
        if self.output_kind == "sigmoid":
            return torch.sigmoid(logits).squeeze(-1)
        if self.output_kind == "softmax":
            return torch.softmax(logits, dim=-1)
        return logits
