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

__all__ = ["MLP", "OUTPUTS", "residual_layers"]

# output -> the function that turns logits into probabilities.
OUTPUTS = ("sigmoid", "softmax", "linear")


def residual_layers(sizes: Sequence[int], residual: bool) -> list[bool]:
    """Per hidden layer, input to output: whether it adds its input, ``h_{l+1} = h_l + act(W_l h_l + b_l)``.

    With ``residual``, every hidden layer after the first whose input width equals its output
    width does (an identity shortcut, He et al., 2016, "Deep Residual Learning for Image
    Recognition", eq. 1, here around one layer); the first layer (from the inputs) and the output
    layer stay plain. ``sizes`` is ``[in, hidden..., out]``.
    """
    return [bool(residual) and k > 0 and sizes[k] == sizes[k + 1] for k in range(len(sizes) - 2)]


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

    ``residual=True``: each hidden layer after the first whose input and output widths are equal
    adds its input, ``h_{l+1} = h_l + act(W_l h_l + b_l)`` (:func:`residual_layers`); the
    modules and state_dict keys are the same as without it.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", output: str = "sigmoid",
                 generator: torch.Generator | int | None = None, residual: bool = False) -> None:
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
        self.residual = bool(residual)
        self.skips = residual_layers(sizes, self.residual)  # per hidden layer: adds its input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, out)`` for inputs ``(N, in)``."""
        if not self.residual:  # nn.Sequential's forward
            for module in self:
                x = module(x)
            return x
        return self._layers(x)[0]

    def _layers(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Logits, each hidden layer's pre-activation and each hidden layer's output (skip added)."""
        linears = self.linears
        acts = [module for name, module in self.named_children() if name.startswith("act")]
        pre, outs = [], []
        for linear, act, skip in zip(linears[:-1], acts, self.skips, strict=True):
            z = linear(x)  # (N, units)
            pre.append(z)
            a = act(z)
            x = x + a if skip else a
            outs.append(x)
        return linears[-1](x), pre, outs

    @property
    def linears(self) -> list[nn.Linear]:
        """The Linear layers, input to output."""
        return [m for m in self if isinstance(m, nn.Linear)]

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every hidden layer, each ``(N, units)``: post-activation, plus the input where it adds it."""
        return self._layers(x)[2]

    def preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pre-activations ``W_l h_l + b_l`` of every hidden layer, each ``(N, units)``."""
        return self._layers(x)[1]

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities: ``(N,)`` P(class 1) for a sigmoid output, ``(N, K)`` for softmax."""
        logits: torch.Tensor = self(x)
        if self.output_kind == "sigmoid":
            return torch.sigmoid(logits).squeeze(-1)
        if self.output_kind == "softmax":
            return torch.softmax(logits, dim=-1)
        return logits
