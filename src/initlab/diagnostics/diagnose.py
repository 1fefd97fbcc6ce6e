"""``diagnose``: one forward and one backward pass through any ``nn.Module``, measured per layer.

The front for torch modules: :class:`~initlab.trace.Tracer` observes the pass, :func:`layer_stats`
measures each row, :func:`~initlab.diagnostics.pipeline.diagnosis_from_rows` judges them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .._adapters import adapter
from .._validation import ValidationError
from ..activations import HEALTHY_GAIN
from ..trace import ACTIVATION_MODULES, PASS_THROUGH, WEIGHTED
from .behaviour import activation_gain, growth_degree, resembles
from .chains import depth_chains, geometric_rate, hidden_weighted, output_layer
from .io import Inputs, as_inputs, batch_shape, call_model, pick_output
from .pipeline import attention_rows, default_loss, diagnosis_from_rows, surrogate_loss
from .readout import measure_readout
from .recorder import Recorder, record_forward, recording
from .rows import SAMPLE_SIZE, Grads, layer_stats, row_gradients, row_samples, tensor_norm
from .types import Coverage, Diagnosis, LayerStats, Verdict

__all__ = [
    "diagnose", "Diagnosis", "LayerStats", "Verdict", "Coverage", "record_forward", "layer_stats", "depth_chains",
    "ACTIVATION_MODULES", "PASS_THROUGH", "WEIGHTED", "HEALTHY_GAIN", "SAMPLE_SIZE", "measure_coverage",
    "output_layer", "hidden_weighted", "geometric_rate", "activation_gain", "growth_degree", "resembles",
    "row_gradients",
]


def diagnose(
    model: nn.Module,
    inputs: Inputs | np.ndarray,
    targets: torch.Tensor | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    output: str | int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Diagnosis:
    """Measure ``model``'s initialization on a batch: one forward and one backward pass.

    With ``targets`` the loss is ``loss_fn`` (default: cross-entropy for class indices with
    several outputs, binary cross-entropy from logits for 0/1 targets on one output, else MSE);
    without, the surrogate ``sum(outputs * r) / N`` with a fixed Gaussian ``r`` (seed 0), so
    every output receives a unit-scale gradient. The model is left as it was: parameter
    ``.grad`` fields are untouched (gradients come from ``torch.autograd.grad``) and buffers
    (BatchNorm running statistics) are restored; the train/eval mode is used as it is.

    ``inputs``: a tensor (``model(x)``), a tuple (``model(*x)``) or a dict of keyword inputs
    (``model(**x)``); integer arrays stay integer (token ids). The measured output is picked by
    :func:`initlab.diagnostics.io.pick_output`: a tensor, else ``logits`` / the first tensor of a
    dict, dataclass (``ModelOutput``) or tuple, or the field / index ``output``. ``progress(done,
    total)`` is called after each layer's measurements.

    What the pass reaches is listed in :mod:`initlab.trace` (modules, functional calls on the model's
    parameters, norms, attention, repeated blocks). ``Diagnosis.coverage`` counts the parameter
    tensors and the computations measured, and lists every other one with why (a softmax not
    measured as attention too); verdicts are about measured rows only.
    """
    foreign = adapter(model, "diagnose")  # a Keras 3 model (torch backend): initlab.integrations.keras
    if foreign is not None:
        return cast(Diagnosis, foreign(model, inputs, targets, loss_fn))
    inputs = as_inputs(inputs)
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        with torch.enable_grad(), recording(model) as recorder:
            outputs = pick_output(call_model(model, inputs), output)
        records = recorder.records
        if not any(r.weighted for r in records):
            raise ValidationError("the model has no weighted layer to diagnose (no Linear, Conv, Embedding, "
                                  "recurrent layer or functional call on one of its parameters was reached)")
        with torch.enable_grad():
            if targets is not None:
                targets = torch.as_tensor(targets)
                loss = (loss_fn or default_loss)(outputs, targets)
            else:
                loss = surrogate_loss(outputs)
            grads = _gradients(loss, recorder, model)
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
    layers = []
    for r, wg, bg, og in zip(records, grads.weights, grads.biases, grads.outputs, strict=False):
        layers.append(layer_stats(r, wg, og, bias_grad=bg))
        if progress is not None:
            progress(len(layers), len(records))
    blocks = [{"name": b.name, "group": b.group, "index": b.index, "input_std": b.input_std,
               "output_std": b.output_std, "output_grad_norm": tensor_norm(g)}
              for b, g in zip(recorder.blocks, grads.blocks, strict=False)]
    return diagnosis_from_rows(
        layers, float(loss.detach()), input_shape=batch_shape(inputs),
        samples={r.name: row_samples(r, og) for r, og in zip(records, grads.outputs, strict=False)},
        coverage=measure_coverage(model, recorder, grads.params), norms=[asdict(n) for n in recorder.norms],
        attention=attention_rows(recorder.attention), blocks=blocks,
        readout=measure_readout(outputs, targets))  # the output at init against class targets (None otherwise)


def _gradients(loss: torch.Tensor, recorder: Recorder, model: nn.Module) -> Grads:
    """Every gradient diagnose reports, from one ``torch.autograd.grad`` call."""
    blocks = dict(enumerate(b.output for b in recorder.blocks))
    weights, biases, outputs, extra = row_gradients(loss, recorder.records,
                                                    {"blocks": blocks, "params": dict(model.named_parameters())})
    return Grads(weights, biases, outputs, [extra["blocks"][i] for i in range(len(blocks))], extra["params"])


def measure_coverage(model: nn.Module, recorder: Recorder, grads: dict[str, torch.Tensor | None]) -> Coverage:
    """Which parameters a row (or a normalisation record) measured, why each other one was not, and
    the computations measured (rows, activations, norms, attention) and not (a softmax not seen as attention)."""
    measured = {n for r in recorder.records for n in r.params} | {n for norm in recorder.norms for n in norm.params}
    named = dict(model.named_parameters())
    unattributed: list[dict[str, Any]] = []
    for name, p in named.items():
        if name in measured:
            continue
        ops = sorted(recorder.uses.get(name, ()))
        grad = grads.get(name)
        if ops:
            reason = f"used directly by {', '.join(ops)}, not by a layer initlab measures"
        elif not p.requires_grad:
            reason = "frozen (requires_grad=False) and not used by a layer initlab measures"
        elif grad is not None:
            reason = "reaches the loss through an operation initlab does not see"
        else:
            reason = "not used in this forward pass (no gradient reaches it)"
        unattributed.append({"name": name, "shape": list(p.shape), "numel": p.numel(), "reason": reason,
                             "grad_norm": tensor_norm(grad) if grad is not None else None})
    total = sum(p.numel() for p in named.values())
    missing = sum(u["numel"] for u in unattributed)
    computations = {"weighted": sum(r.weighted for r in recorder.records),
                    "activation": sum(r.activation is not None and r.activation != "linear" for r in recorder.records),
                    "norm": len(recorder.norms), "attention": len(recorder.attention)}
    unmeasured = [{"op": "softmax", "name": s["name"], "shape": s["shape"],
                   "reason": "not a (batch, heads, queries, keys) tensor nor a q·k product initlab followed"}
                  for s in recorder.softmaxes if not s["attention"]]
    return Coverage(len(named), len(named) - len(unattributed), total, total - missing, unattributed,
                    computations, unmeasured)
