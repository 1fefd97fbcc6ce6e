"""Fixup: initialize a residual network without normalization so that it neither explodes nor vanishes.

Zhang, Dauphin & Ma (2019), "Fixup Initialization: Residual Learning Without Normalization"
(ICLR), section 3, the three rules:

1. the classification layer and the last layer of every residual branch start at 0;
2. every other layer starts with a standard method (He et al. 2015: N(0, 2 / fan_in)), and the
   weight layers inside residual branches are then scaled by ``L^(-1/(2m-2))``, with L the
   number of residual branches and m the number of layers in a branch;
3. a scalar multiplier (1) in every branch and a scalar bias (0) before each linear layer and
   each element-wise activation.

It is a model-level scheme (it needs the block structure), so it is not in the per-tensor catalog.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .._rng import make_generator
from .._validation import ValidationError, check_int
from .registry import get

__all__ = ["fixup_init", "fixup_scale", "he_residual_init"]


def fixup_scale(num_blocks: int, branch_layers: int) -> float:
    """Fixup's branch scale ``L^(-1/(2m-2))`` (Zhang et al. 2019, rule 2): L branches of m layers."""
    num_blocks = check_int("num_blocks", num_blocks, 1)
    branch_layers = check_int("branch_layers", branch_layers, 2)
    return float(num_blocks ** (-1.0 / (2 * branch_layers - 2)))  # int ** float is Any in the stubs


def fixup_init(model: nn.Module, num_blocks: int | None = None,
               generator: torch.Generator | int | None = None) -> nn.Module:
    """Fixup-initialize a :class:`~initlab.models.residual.ResidualMLP` in place and return it.

    Stem: He normal N(0, 2 / fan_in), bias 0. Branch ``i`` of ``m`` layers: layers 1..m-1 He
    normal times ``L^(-1/(2m-2))``, layer m zero; scalar biases 0, multiplier 1. Classifier:
    weight and bias 0, scalar bias 0. ``num_blocks`` (L) defaults to the model's number of
    blocks; giving it checks that it matches. Draws come from ``generator`` (or an int seed),
    in module order.
    Reference: Zhang, Dauphin & Ma, 2019, "Fixup Initialization: Residual Learning Without Normalization".
    """
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "stem") or not hasattr(model, "head"):
        raise ValidationError(
            "fixup_init needs a residual model with stem, blocks and head (initlab.models.residual.ResidualMLP)"
        )
    n = len(blocks)
    if num_blocks is None:
        num_blocks = n
    num_blocks = check_int("num_blocks", num_blocks, 1)
    if num_blocks != n:
        raise ValidationError(f"num_blocks={num_blocks} but the model has {n} residual blocks")
    gen = make_generator(generator)
    he = get("he_normal")
    stem, head = cast(nn.Linear, model.stem), cast(nn.Linear, model.head)  # checked above
    with torch.no_grad():
        he(stem.weight, gen)
        if stem.bias is not None:
            stem.bias.zero_()
        for block in blocks:
            m = len(block.linears)
            scale = fixup_scale(num_blocks, m)
            for layer in block.linears[:-1]:
                he(layer.weight, gen).mul_(scale)
            block.linears[-1].weight.zero_()
            for p in (*block.bias_in, *block.bias_act, block.bias_out):
                p.zero_()
            block.scale.fill_(1.0)
        head.weight.zero_()
        if head.bias is not None:
            head.bias.zero_()
        cast(torch.Tensor, model.bias_head).zero_()
    return model


def he_residual_init(model: nn.Module, generator: torch.Generator | int | None = None) -> nn.Module:
    """The baseline: every Linear layer He normal (branch last layers and classifier too), biases 0,
    scalar biases 0 and multipliers 1, i.e. the residual model as a plain He-initialized network."""
    from .apply import apply_init

    apply_init(model, "he_normal", "zeros", generator=generator)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.numel() == 1:  # Fixup's scalars: biases 0, the multiplier 1
                p.fill_(1.0 if name.endswith("scale") else 0.0)
    return model

