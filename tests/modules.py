"""Small torch modules the tests share (not a test file: pytest collects only ``test_*.py``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Act(nn.Module):
    """A generic activation module around any function: diagnose must learn what it does from its outputs."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)
