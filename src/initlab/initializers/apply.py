"""Initialize every layer of any ``nn.Module`` from the catalog, and account for every parameter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from .._adapters import adapter
from .._rng import make_generator
from .._validation import ValidationError
from .account import Account, ParamEntry, ParamSlot, param_slots
from .critical import bind_critical
from .lsuv import lsuv_model, preserved
from .registry import Initializer, get

if TYPE_CHECKING:
    from .lsuv import LSUVResult, LSUVUnit

__all__ = ["apply_init", "init_layers"]

_LAYER_TYPES = (nn.Linear, nn.modules.conv._ConvNd)


def init_layers(model: nn.Module) -> list[nn.Module]:
    """The Linear and Conv layers of ``model`` in registration (usually forward) order."""
    return [m for m in model.modules() if isinstance(m, _LAYER_TYPES)]


def apply_init(
    model: nn.Module,
    weight: str | Mapping[str, Any] | Initializer,
    bias: str | Mapping[str, Any] | Initializer | None = "zeros",
    generator: torch.Generator | int | None = None,
    data: Any = None,  # a batch the model accepts (tensor, tuple or dict), for data-dependent inits
    *,
    account: bool = False,
) -> nn.Module | Account:
    """Initialize every layer's weights and biases in place; return the model (or, with ``account=True``, the account).

    Drawn: ``nn.Linear`` and ``nn.Conv*`` weights, transformers' ``Conv1D`` (GPT-2; stored
    ``(in, out)``, drawn through its transpose), ``nn.MultiheadAttention``'s in-projection (q, k, v
    drawn as three matrices with their own fans) and ``nn.LSTM``/``GRU``/``RNN`` weights (one
    matrix per gate). Left, and said so in the account: embeddings, normalization scales, and any
    other parameter. A tied parameter is drawn once: by its first holder in module order if every
    holder is a drawn layer; left if any holder is not (GPT-2's ``lm_head.weight`` is the token
    embedding: drawing it would re-draw the embedding).

    ``weight`` and ``bias`` are names, aliases or specs from the catalog (``bias=None`` leaves
    biases alone). A bias drawn with a fan-dependent scheme (``he_normal``, ...) uses its layer's
    weight fans, ``fan_in = in * prod(kernel)``, as PyTorch's own layer reset does (``nn.Linear``:
    bias ~ U(+-1/sqrt(fan_in))); Keras uses fan_in = fan_out = units (the bias length) instead,
    which is what calling the initializer on the bare bias vector gives. ``generator`` (or an int
    seed) makes the draw reproducible; without it, a ``seed`` in the weight spec (Keras'
    ``HeNormal(seed=1)``) seeds the one generator the whole model draws from, in order (so layers
    differ). ``"critical"`` takes its activation from the model's activation modules, or refuses
    (see :func:`~initlab.initializers.critical.bind_critical`). ``data`` is a batch of inputs,
    needed by ``"lsuv"`` only: orthonormal draws, then every layer rescaled on the model's graph
    (see :mod:`initlab.initializers.lsuv`). On any error the model is left exactly as it was.

    ``account=True`` returns an :class:`~initlab.initializers.account.Account`: one
    ``ParamEntry`` per parameter name, ``touched`` or ``left`` with the reason.
    """
    foreign = adapter(model, "apply_init")  # a Keras 3 model (torch backend): initlab.integrations.keras
    if foreign is not None:
        return cast("nn.Module | Account", foreign(model, weight, bias, generator, data))
    weight_init = get(weight)
    bias_init = get(bias) if bias is not None else None
    weight_init, bias_init = bind_critical(model, weight_init, bias_init)
    if weight_init.name == "lsuv" and data is None:
        raise ValidationError("initializer 'lsuv' is data-dependent: pass data= (a batch of inputs)")
    gen = make_generator(generator if generator is not None else weight_init.params.get("seed"))
    slots = list(param_slots(model))
    plan = _plan(slots, bias_init is not None)
    entries = Account()
    with preserved(model):  # any error (a scheme refusing a shape, lsuv's example) leaves the model as it was
        drawn: list[nn.Module] = []
        with torch.no_grad():
            for slot in slots:
                action, reason = plan[slot.name]
                if action == "touched":
                    init = weight_init if slot.blocks else bias_init
                    assert init is not None  # _plan leaves bias slots when bias_init is None
                    _draw(slot, init, gen)
                    if slot.blocks and slot.module not in drawn:
                        drawn.append(slot.module)
                entries.append(ParamEntry(slot.name, slot.module_name, slot.kind, action, reason,
                                          std=_std(slot.param)))
        if weight_init.name == "lsuv":
            params = weight_init.scheme.defaults | dict(weight_init.params)
            if not isinstance(data, (torch.Tensor, tuple, list, Mapping)):
                data = torch.as_tensor(data, dtype=torch.float32)
            result = lsuv_model(model, data, tol=params["tol"], max_iter=params["max_iter"], modules=drawn)
            _add_lsuv(entries, result, slots)
    return entries if account else model


def _plan(slots: list[ParamSlot], draw_bias: bool) -> dict[str, tuple[str, str]]:
    """slot name -> (action, reason): tied parameters drawn once, deliberately."""
    holders: dict[int, list[ParamSlot]] = {}
    for s in slots:
        holders.setdefault(id(s.param), []).append(s)
    plan: dict[str, tuple[str, str]] = {}
    for group in holders.values():
        first = group[0]
        undrawn = [s for s in group if not s.drawable]
        for s in group:
            if undrawn and s.drawable:  # tied to something apply_init does not draw
                plan[s.name] = ("left", f"tied to {undrawn[0].name} ({undrawn[0].kind}), which is not drawn: "
                                        "drawing it would change that too")
            elif s is not first:
                plan[s.name] = ("left", f"tied to {first.name}: one tensor, drawn once there")
            elif not s.drawable:
                plan[s.name] = ("left", s.note)
            elif s.bias_fans and not draw_bias:
                plan[s.name] = ("left", "bias=None: kept as it is")
            else:
                plan[s.name] = ("touched", "")
    return plan


def _draw(slot: ParamSlot, init: Initializer, gen: torch.Generator) -> None:
    if slot.blocks:
        if len(slot.blocks) == 1 and slot.blocks[0].view is slot.param:  # a plain layer, drawn as before
            init(slot.param, gen)
            return
        for block in slot.blocks:
            init(block.view, gen, fans=block.fans)
        return
    if len(slot.bias_fans) == 1:
        init(slot.param, gen, fans=slot.bias_fans[0])
        return
    rows = slot.param.shape[0] // len(slot.bias_fans)
    for i, fans in enumerate(slot.bias_fans):
        init(slot.param[i * rows:(i + 1) * rows], gen, fans=fans)


def _std(p: torch.Tensor) -> float | None:
    return float(p.detach().float().std()) if p.numel() > 1 else None


def _add_lsuv(entries: Account, result: LSUVResult, slots: list[ParamSlot]) -> None:
    """Measured output std of each rescaled weight (mean over its blocks' variances), and its std after."""
    param_of = {s.name: s.param for s in slots}
    units: dict[int, list[LSUVUnit]] = {}
    for u in result.units:
        units.setdefault(id(u.param), []).append(u)
    uncalled = {id(u.param) for u in result.uncalled}
    for e in entries:
        if e.action != "touched" or e.kind == "bias":
            continue
        p = param_of[e.name]
        if id(p) in units:
            e.measured_std = (sum(u.variance for u in units[id(p)]) / len(units[id(p)])) ** 0.5
            e.std = _std(p)
        elif id(p) in uncalled:
            e.reason = "not called in the forward pass on data: drawn, not rescaled"
