"""The account of an initialization: one row per parameter, touched or left, and why.

``apply_init(..., account=True)`` and ``initlab.autoinit`` both return these rows, so that no
parameter is ever skipped silently. :func:`param_slots` is the one walk over a model that both
use: it names every parameter (tied ones under each of their names), says what kind it is and,
for the weights initlab can draw, how to draw them: in blocks with their own fans where one
tensor holds several matrices (attention's q, k, v in-projection; an LSTM's four gates), and
transposed where a layer stores ``(in, out)`` (transformers' ``Conv1D`` of GPT-2).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, SupportsIndex, cast, overload

import torch
from torch import nn

from .. import _html
from ._fans import compute_fans

__all__ = ["KINDS", "ParamEntry", "Account", "ParamSlot", "Block", "param_slots", "is_conv1d"]

KINDS = ("linear", "conv", "embedding", "attention", "recurrent", "norm", "bias", "other")

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))


@dataclass
class ParamEntry:
    """One parameter of the model and what was done to it."""

    name: str                            # qualified parameter name, e.g. "blocks.0.fc.weight"
    module: str                          # qualified module name
    kind: str                            # one of KINDS
    action: str                          # "touched" | "left"
    reason: str = ""                     # why left (or a note on how it was touched): "tied to <name>", ...
    std: float | None = None             # the std of the parameter after the call
    predicted_std: float | None = None   # predicted output std of the module on the example
    measured_std: float | None = None    # measured output std of the module on the example

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (non-finite floats as strings)."""
        return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


class Account(list["ParamEntry"]):
    """A list of :class:`ParamEntry`, one per parameter name, with a short repr and a table view."""

    def touched(self) -> list[ParamEntry]:
        """Entries of the parameters that were set."""
        return [e for e in self if e.action == "touched"]

    def left(self) -> list[ParamEntry]:
        """Entries of the parameters left as they were, each with its reason."""
        return [e for e in self if e.action == "left"]

    @overload
    def __getitem__(self, key: str | SupportsIndex) -> ParamEntry: ...

    @overload
    def __getitem__(self, key: slice) -> list[ParamEntry]: ...

    def __getitem__(self, key: str | SupportsIndex | slice) -> ParamEntry | list[ParamEntry]:
        if isinstance(key, str):  # account["lm_head.weight"]
            for e in self:
                if e.name == key:
                    return e
            raise KeyError(key)
        return super().__getitem__(key)

    def __repr__(self) -> str:
        left = self.left()
        shown = "; ".join(f"{e.name} ({e.reason})" for e in left[:4]) + ("; ..." if len(left) > 4 else "")
        return f"Account(touched={len(self.touched())}, left={len(left)}{': ' + shown if left else ''})"

    def summary(self) -> str:
        """One line per parameter: name, kind, action and reason, std after the call."""
        lines = [repr(self)]
        for e in self:
            measured = f" output std={_html.number(e.measured_std)}" if e.measured_std is not None else ""
            lines.append(f"  {e.name:<40} {e.kind:<10} {e.action:<8} std={_html.number(e.std)}{measured}  {e.reason}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [(e.name, e.kind, e.action, e.reason, _html.number(e.std), _html.number(e.measured_std)) for e in self]
        table = _html.table(("parameter", "kind", "action", "reason", "std", "measured output std"), rows, right=(4, 5))
        return _html.box("initialization account", table,
                         subtitle=f"{len(self.touched())} touched, {len(self.left())} left")


@dataclass
class Block:
    """A matrix inside a parameter, drawn on its own: a view in PyTorch's ``(out, in, *k)`` layout."""

    view: torch.Tensor
    fans: tuple[int, int]


@dataclass
class ParamSlot:
    """One (module, attribute) holding a parameter, classified.

    ``blocks`` is empty for parameters initlab does not draw (``kind`` says what they are);
    a bias has ``bias_of``: the fans of the weight it belongs to, one pair per block.
    """

    name: str                   # qualified name of this holder, "lm_head.weight"
    module_name: str
    module: nn.Module
    attr: str
    param: nn.Parameter
    kind: str
    blocks: list[Block] = field(default_factory=list)
    bias_fans: list[tuple[int, int]] = field(default_factory=list)
    note: str = ""              # why it is not drawn, when blocks is empty

    @property
    def drawable(self) -> bool:
        return bool(self.blocks) or bool(self.bias_fans)


def is_conv1d(module: nn.Module) -> bool:
    """transformers' ``Conv1D`` (GPT-2): a linear layer storing its weight as ``(in, out)``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and getattr(module, "weight", None) is not None


def _split(param: torch.Tensor, parts: int) -> list[Block]:
    """``parts`` equal row blocks of a 2-D weight, each with fans ``(in, rows)``."""
    rows = param.shape[0] // parts
    return [Block(param[i * rows:(i + 1) * rows], (param.shape[1], rows)) for i in range(parts)]


def _classify(module: nn.Module, attr: str, param: torch.Tensor) -> tuple[str, list[Block], list[tuple[int, int]], str]:
    """(kind, weight blocks, bias fans, note) for ``module.<attr>``."""
    if isinstance(module, nn.MultiheadAttention):
        if attr == "in_proj_weight":  # (3E, E): q, k, v stacked
            return "attention", _split(param, 3), [], ""
        if attr in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
            return "attention", [Block(param, compute_fans(param.shape))], [], ""
        if attr == "in_proj_bias":
            e = param.shape[0] // 3
            fans = [compute_fans(w.shape) for w in _mha_weights(module)] or [(e, e)] * 3
            return "bias", [], fans, ""
        return "other", [], [], "attention's add_bias_kv key/value biases: kept as they are"
    if isinstance(module, nn.RNNBase):
        gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
        if attr.startswith("weight_hr"):  # LSTM projection (proj_size, H)
            return "recurrent", [Block(param, compute_fans(param.shape))], [], ""
        if attr.startswith("weight_"):  # (gates*H, in) or (gates*H, H): one block per gate
            return "recurrent", _split(param, gates), [], ""
        if attr.startswith("bias_"):
            partner = getattr(module, attr.replace("bias_", "weight_"))
            return "bias", [], [b.fans for b in _split(partner, gates)], ""
    if isinstance(module, nn.Linear):
        if attr == "weight":
            return "linear", [Block(param, compute_fans(param.shape))], [], ""
        if attr == "bias":
            return "bias", [], [compute_fans(module.weight.shape)], ""
    if isinstance(module, nn.modules.conv._ConvNd):
        if attr == "weight":
            return "conv", [Block(param, compute_fans(param.shape))], [], ""
        if attr == "bias":
            return "bias", [], [compute_fans(module.weight.shape)], ""
    if is_conv1d(module):
        if attr == "weight":  # (in, out): drawn through its transpose, PyTorch's (out, in)
            return "linear", [Block(param.T, (param.shape[0], param.shape[1]))], [], ""
        if attr == "bias":
            weight = cast(torch.Tensor, module.weight)
            return "bias", [], [(weight.shape[0], weight.shape[1])], ""
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "embedding", [], [], "an embedding (a lookup table, no fan-in): kept as it is"
    if isinstance(module, _NORMS):
        return "norm", [], [], "normalization scale/shift: kept as it is"
    return "other", [], [], f"{type(module).__name__}.{attr}: not a layer initlab knows how to draw"


def _mha_weights(module: nn.MultiheadAttention) -> list[torch.Tensor]:
    if module.in_proj_weight is not None:
        e = module.in_proj_weight.shape[0] // 3
        return [module.in_proj_weight[i * e:(i + 1) * e] for i in range(3)]
    return [w for w in (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight) if w is not None]


def param_slots(model: nn.Module) -> Iterator[ParamSlot]:
    """Every (module, attribute) holding a parameter, in module order, weights before biases.

    A tied parameter appears once per holder (``transformer.wte.weight`` and ``lm_head.weight``);
    callers decide which holder draws it (see ``apply_init``).
    """
    for module_name, module in model.named_modules():
        params = [(a, p) for a, p in module._parameters.items() if p is not None]
        params.sort(key=lambda ap: ap[0].startswith("bias") or ap[0] == "in_proj_bias")  # weights first (stable)
        for attr, param in params:
            kind, blocks, bias_fans, note = _classify(module, attr, param)
            name = f"{module_name}.{attr}" if module_name else attr
            yield ParamSlot(name, module_name, module, attr, param, kind, blocks, bias_fans, note)
