"""Two width-parametrized MLPs for ``initlab coord-check`` (see docs/how-to/coord-check.md).

``sp(width)``: standard parametrization, PyTorch's default init, no multipliers.
``mup(width)``: the same network with muP's readout (Yang et al. 2022, "Tensor Programs V",
Table 8 / ``mup.MuReadout``): the output layer's input is multiplied by ``BASE_WIDTH / width``
and the output layer starts at zero. The other half of muP is the optimizer's: Adam's learning
rate of the hidden (width x width) weights divided by ``width / BASE_WIDTH``, which
``initlab coord-check --lr-scaling mup`` applies.

    initlab coord-check examples/coordcheck_mlp.py:sp --widths 64,128,256,512,1024 --input-shape 32
    initlab coord-check examples/coordcheck_mlp.py:mup --widths 64,128,256,512,1024 --input-shape 32 --lr-scaling mup
"""

from __future__ import annotations

import torch
from torch import nn

IN_FEATURES = 32  # one sample's shape: --input-shape 32
CLASSES = 10
BASE_WIDTH = 64  # muP's base width: at this width the two networks are the same function


class MuReadout(nn.Linear):
    """``Linear(x * base_width / width)``: muP's output layer, started at zero (as ``mup.MuReadout(readout_zero_init=True)``)."""

    def __init__(self, width: int, out_features: int, base_width: int = BASE_WIDTH) -> None:
        super().__init__(width, out_features)
        self.multiplier = base_width / width
        with torch.no_grad():
            self.weight.zero_()
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x * self.multiplier)


def _body(width: int) -> list[nn.Module]:
    return [nn.Linear(IN_FEATURES, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, width), nn.ReLU()]


def sp(width: int) -> nn.Module:
    """Standard parametrization: three hidden layers of ``width`` units and a plain readout."""
    return nn.Sequential(*_body(width), nn.Linear(width, CLASSES))


def mup(width: int) -> nn.Module:
    """The same network with muP's readout (run it with ``--lr-scaling mup`` for muP's Adam learning rates)."""
    return nn.Sequential(*_body(width), MuReadout(width, CLASSES))
