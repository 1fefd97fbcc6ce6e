"""Discovery: an example input for the model, and the op-level dataflow of one forward pass.

The dataflow is recorded with a ``TorchFunctionMode`` (every torch function and tensor method
the model calls, in execution order, with module boundaries from forward hooks), which works
on any eager model, including ones torch.fx cannot trace (data-dependent control flow, HF
transformers). torch.fx is used where no example is given: to check that the model's first
layer fixes the input's shape, from which an example is drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .._inputs import call_model, error_line
from .._validation import ValidationError
from ..trace import module_stack as module_stack_hooks

__all__ = ["make_example", "run_forward", "module_stack_hooks", "quiet_forward"]


def _first_layer(model: nn.Module) -> nn.Module | None:
    for m in model.modules():
        if any(True for _ in m.parameters(recurse=False)):
            return m
    return None


def _fx_first_consumer(model: nn.Module) -> nn.Module:
    """The module that consumes the model's (single) input in its torch.fx graph; raises ValidationError."""
    import torch.fx

    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as err:  # any tracing failure: report its first line
        raise ValidationError(
            f"autoinit: {type(model).__name__} cannot be traced by torch.fx ({error_line(err, 160)}) "
            "and no example was given; pass example=<a batch of inputs> or input_shape=(...)"
        ) from None
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ValidationError(f"autoinit: {type(model).__name__}.forward takes {len(placeholders)} inputs; "
                              "pass example=(...) with one tensor per input")
    frontier = list(placeholders[0].users)
    while frontier:  # through shape ops (flatten, view) to the first module with weights
        node = frontier.pop(0)
        if node.op == "call_module":
            mod = gm.get_submodule(node.target)
            if any(True for _ in mod.parameters()):
                return mod
        frontier.extend(node.users)
    raise ValidationError(f"autoinit: cannot find the first layer of {type(model).__name__}; pass example= or input_shape=")


def make_example(model: nn.Module, example: Any, input_shape: Any, generator: torch.Generator) -> Any:
    """``example`` as given, else a batch drawn for ``input_shape`` or for the first layer's shape.

    Floats are N(0, 1); a model whose first layer is an ``nn.Embedding`` gets token ids.
    """
    if example is not None:
        if isinstance(example, torch.Tensor) and example.is_floating_point() and not torch.isfinite(example).all():
            raise ValidationError("autoinit: example holds NaN or inf values")
        return example
    first = _first_layer(model)
    if input_shape is not None:
        try:
            shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError):
            raise ValidationError(f"input_shape must be a tuple of positive ints, got {input_shape!r}") from None
        if not shape or min(shape) < 1:
            raise ValidationError(f"input_shape must be a tuple of positive ints, got {input_shape!r}")
        if isinstance(first, nn.Embedding):
            return torch.randint(0, first.num_embeddings, shape, generator=generator)
        return torch.randn(shape, generator=generator)
    first = _fx_first_consumer(model)
    if isinstance(first, nn.Linear):
        return torch.randn(256, first.in_features, generator=generator)
    if isinstance(first, nn.Embedding):
        return torch.randint(0, first.num_embeddings, (16, 32), generator=generator)
    raise ValidationError(f"autoinit: the first layer of {type(model).__name__} is {type(first).__name__}, "
                          "which does not fix the input's shape; pass example= or input_shape=")


def run_forward(model: nn.Module, example: Any) -> Any:
    """``model(example)`` (a tuple is unpacked, a dict passed as keywords); a failure becomes one ValidationError."""
    return call_model(model, example, lambda err: ValidationError(
        f"autoinit: {type(model).__name__} rejected the example ({_describe(example)}): {error_line(err, 200)}"))


def _describe(example: Any) -> str:
    if isinstance(example, torch.Tensor):
        return f"tensor of shape {tuple(example.shape)}, {example.dtype}"
    if isinstance(example, dict):
        return "dict with keys " + ", ".join(map(str, example))
    if isinstance(example, (tuple, list)):
        return f"{len(example)} inputs"
    return type(example).__name__


@contextmanager
def quiet_forward(model: nn.Module) -> Iterator[None]:
    """A forward pass that leaves no trace: no grad, global RNG restored, buffers (BN stats) restored,
    the fused fast paths of attention off (they hide the projection weights in one kernel)."""
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    fast = getattr(torch.backends, "mha", None)
    was_fast = fast.get_fastpath_enabled() if fast is not None else None
    try:
        if fast is not None:
            fast.set_fastpath_enabled(False)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)  # dropout masks, deterministic; the caller's RNG state is restored
            yield
    finally:
        if fast is not None:
            fast.set_fastpath_enabled(was_fast)
        with torch.no_grad():
            for k, v in model.named_buffers():
                if k in buffers:
                    v.copy_(buffers[k])
