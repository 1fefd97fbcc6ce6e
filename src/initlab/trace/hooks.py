"""The module half of the tracer: forward hooks on weighted, normalisation, activation and block modules.

:class:`ModuleHooks` is the base of :class:`initlab.trace.tracer.Tracer`, which provides the row
building (``_weighted_row``, ``_activation``) and naming these hooks call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from . import ops
from .events import BlockRecord, NormRecord, Record
from .lineage import Lineage

__all__ = ["ModuleHooks"]


class ModuleHooks:
    """Forward hooks for each kind of module; their events go through the tracer's row builders."""

    def __init__(self) -> None:
        self.lineage = Lineage()
        self._probing = False
        self._block_inputs: dict[int, float] = {}

    if TYPE_CHECKING:  # provided by Tracer (declared here for the type checker only)
        functional: bool
        norms: list[NormRecord]
        blocks: list[BlockRecord]
        _names: dict[int, str]
        _blocks: dict[str, str]
        _stack: list[tuple[str, nn.Module]]
        _inside: dict[int, int]
        _custom: dict[int, bool]

        def _recording(self) -> bool: ...

        def param_name(self, p: torch.Tensor) -> str: ...

        def _weighted_row(self, name: str, module: nn.Module | None, main: torch.Tensor, weights: list[torch.Tensor],
                          biases: list[torch.Tensor], rows: torch.Tensor, x: torch.Tensor | None,
                          output: torch.Tensor, unit_dim: int, fan_in: int, fan_out: int, kind: str,
                          groups: int = 1) -> Record: ...

        def _activation(self, kind: str, x: Any, output: Any, name: str, label: str,
                        fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                        params: Iterable[torch.Tensor] = ()) -> None: ...

    def _module_hooks(self, name: str, module: nn.Module) -> list[RemovableHandle]:
        """The hooks ``module`` needs, registered."""
        handles: list[RemovableHandle] = []
        if isinstance(module, ops.WEIGHTED + ops.RECURRENT) or ops.is_hf_conv1d(module):
            handles.append(module.register_forward_pre_hook(self._enter))
            handles.append(module.register_forward_hook(self._on_weighted))
        elif isinstance(module, ops.PASS_THROUGH + (nn.Flatten,)):
            handles.append(module.register_forward_hook(self._on_pass_through))
        elif type(module) in ops.ACTIVATION_MODULES:
            if getattr(module, "inplace", False):
                handles.append(module.register_forward_pre_hook(self._copy_input))
            handles.append(module.register_forward_hook(self._on_activation))
        elif ops.is_custom_norm(module):
            handles.append(module.register_forward_pre_hook(self._norm_in))
            handles.append(module.register_forward_hook(self._on_custom_norm))
        elif ops.may_be_activation(module):
            handles.append(module.register_forward_hook(self._on_custom))
        if name in self._blocks:
            handles.append(module.register_forward_pre_hook(self._block_in, with_kwargs=True))
            handles.append(module.register_forward_hook(self._block_out))
        if self.functional and name and ops.may_call_functional(module):
            handles.append(module.register_forward_pre_hook(self._push))
            handles.append(module.register_forward_hook(self._pop))
        return handles

    # -- the module stack (names functional rows) -------------------------------------------
    def _push(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self._stack.append((self._names.get(id(module), ""), module))

    def _pop(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if self._stack:
            self._stack.pop()

    def _enter(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        for p in module.parameters(recurse=False):
            self._inside[id(p)] += 1

    def _leave(self, module: nn.Module) -> None:
        for p in module.parameters(recurse=False):
            if self._inside.get(id(p), 0) > 0:
                self._inside[id(p)] -= 1

    # -- weighted modules -------------------------------------------------------------------
    def _on_weighted(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        self._leave(module)
        if not self._recording():
            return
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        name = self._names.get(id(module), type(module).__name__)
        kind = type(module).__name__
        if isinstance(module, ops.RECURRENT):
            out = output[0] if isinstance(output, tuple) else output
            out = getattr(out, "data", out) if not isinstance(out, torch.Tensor) else out  # PackedSequence
            if not isinstance(out, torch.Tensor):
                return
            weights: list[torch.Tensor] = [p for n, p in module.named_parameters(recurse=False)
                                           if n.startswith("weight")]
            biases: list[torch.Tensor] = [p for n, p in module.named_parameters(recurse=False) if n.startswith("bias")]
            rows = ops.recurrent_rows(module)
            self._weighted_row(name, module, cast(torch.Tensor, module.weight_hh_l0), weights, biases, rows, x, out, -1,
                               fan_in=module.hidden_size, fan_out=module.hidden_size, kind=kind)
            return
        if not isinstance(output, torch.Tensor):
            return
        bias = getattr(module, "bias", None)
        biases = [bias] if isinstance(bias, torch.Tensor) else []
        weight = cast(torch.Tensor, module.weight)
        if ops.is_hf_conv1d(module):  # weight (in, out)
            rows, unit_dim, fan_in, fan_out = weight.t(), -1, weight.shape[0], weight.shape[1]
        elif isinstance(module, nn.modules.conv._ConvTransposeNd):  # weight (in, out / groups, *kernel)
            rows, unit_dim = weight.transpose(0, 1), 1
            receptive = math.prod(weight.shape[2:])
            fan_in, fan_out = weight.shape[0] * receptive, weight.shape[1] * receptive
        else:
            rows = weight
            unit_dim = -1 if isinstance(module, nn.Linear) else 1
            receptive = math.prod(weight.shape[2:]) if weight.ndim > 2 else 1
            fan_in, fan_out = math.prod(weight.shape[1:]), weight.shape[0] * receptive
        groups = getattr(module, "groups", 1) if not isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
        self._weighted_row(name, module, weight, [weight], biases, rows, x, output, unit_dim, fan_in, fan_out, kind,
                           groups=groups)  # groups 0: never a reader (its columns are not the source's units)

    def _on_pass_through(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if not (self._recording() and inputs and isinstance(output, torch.Tensor)):
            return
        x = inputs[0]
        owner = self.lineage.owner(x)
        if owner is not None and not isinstance(module, nn.Flatten):
            self.lineage.own(output, owner)
        feed = self.lineage.feed(x)
        if feed is not None:
            source, flattened = feed
            if isinstance(module, nn.Flatten):
                # only a channel-first flatten of (N, C, ...) into (N, C * ...) keeps each unit's block contiguous
                if module.start_dim != 1 or module.end_dim != -1 or source.unit_dim != 1 or flattened:
                    return
                flattened = True
            self.lineage.set_feed(output, (source, flattened))

    # -- activations ------------------------------------------------------------------------
    def _copy_input(self, module: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...] | None:
        # An in-place activation would overwrite the layer's recorded output: feed it a copy.
        if self._recording() and inputs and self.lineage.owner(inputs[0]) is not None:
            copy = inputs[0].clone()
            self.lineage.own(copy, self.lineage.owner(inputs[0]))
            self.lineage.pass_feed(inputs[0], copy)
            self.lineage.set_pristine(copy, inputs[0].detach().clone())  # the copy is overwritten in place
            return (copy, *inputs[1:])
        return None

    def _on_activation(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if self._recording():
            name = self._names.get(id(module), type(module).__name__)
            params = list(module.parameters(recurse=False))  # PReLU's slope
            self._activation(ops.ACTIVATION_MODULES[type(module)], inputs[0] if inputs else None, output,
                             name, type(module).__name__, ops.module_fn(module), params)

    def _on_custom(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        """A parameter-free leaf module of the user's (or a library's) that acts elementwise: an activation."""
        if not (self._recording() and inputs and isinstance(inputs[0], torch.Tensor)
                and isinstance(output, torch.Tensor) and output.shape == inputs[0].shape):
            return
        if not self._is_custom_activation(module, inputs[0].device):
            return
        name = self._names.get(id(module), type(module).__name__)
        self._activation(type(module).__name__, inputs[0], output, name, type(module).__name__, ops.module_fn(module))

    def _is_custom_activation(self, module: nn.Module, device: torch.device | None = None) -> bool:
        """Probed once per module object and pass (two instances of one class may compute different functions)."""
        if id(module) not in self._custom:
            self._probing = True
            try:
                self._custom[id(module)] = ops.acts_elementwise(ops.module_fn(module), device)
            finally:
                self._probing = False
        return self._custom[id(module)]

    def _in_activation_module(self, device: torch.device | None = None) -> bool:
        if not self._stack:
            return False
        module = self._stack[-1][1]
        return type(module) in ops.ACTIVATION_MODULES or (ops.may_be_activation(module)
                                                          and self._is_custom_activation(module, device))

    def _functional(self, kind: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                    output: Any) -> None:
        # Activation modules report themselves; their internal F.relu/torch.tanh call does not.
        if self._in_activation_module(args[0].device if isinstance(args[0], torch.Tensor) else None):
            return
        func_name = getattr(func, "__name__", kind)
        where = self._stack[-1][0] if self._stack else ""
        rest, kw = tuple(args[1:]), {k: v for k, v in kwargs.items() if k != "inplace"}
        self._activation(kind, args[0], output, f"{where}:{func_name}()" if where else f"{func_name}()",
                         f"{func_name}()", ops.functional_fn(func, rest, kw))

    # -- normalisation modules of the user's (Llama's RMSNorm) ---------------------------------
    def _norm_in(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if self._recording() and inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].numel() > 1:
            self._block_inputs[id(module)] = float(inputs[0].detach().float().std())

    def _on_custom_norm(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        """A normalisation module of the user's or a library's (Llama's RMSNorm): its gain is measured here."""
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if not self._recording() or not isinstance(output, torch.Tensor) or x is None or output.shape != x.shape:
            return
        weight = getattr(module, "weight", None)
        params = [self.param_name(p) for p in module.parameters(recurse=False) if self.param_name(p)]
        with torch.no_grad():
            self.norms.append(NormRecord(
                self._names.get(id(module), type(module).__name__), type(module).__name__,
                self._block_inputs.pop(id(module), float("nan")),
                float(output.detach().float().std()) if output.numel() > 1 else 0.0,
                float(weight.detach().float().mean()) if isinstance(weight, torch.Tensor) else 1.0, params))
        owner = self.lineage.owner(x)
        if owner is not None:  # a norm keeps the layer's units
            self.lineage.own(output, owner)

    # -- repeated blocks --------------------------------------------------------------------
    def _block_in(self, module: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._recording():
            x = ops.first_tensor(inputs) if inputs else ops.first_tensor(kwargs.get("hidden_states", kwargs.get("src")))
            if x is not None and x.is_floating_point() and x.numel() > 1:
                self._block_inputs[id(module)] = float(x.detach().float().std())

    def _block_out(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        out = ops.first_tensor(output)
        if not self._recording() or out is None or not out.is_floating_point():
            return
        name = self._names.get(id(module), "")
        group, _, index = name.rpartition(".")
        self.blocks.append(BlockRecord(name, group, int(index), self._block_inputs.pop(id(module), float("nan")), out))
