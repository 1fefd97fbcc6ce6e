"""M MLPs of one architecture held in stacked tensors, with a hand-written backward.

All parameters live in one flat buffer ``(P,)``; layer ``l`` owns a weight view
``(M, out, in)`` and a bias view ``(M, out)`` of it, so an optimizer steps every model with a
handful of elementwise kernels (Adam, RMSprop and SGD are elementwise, so this equals M
independent optimizers). Activations are kept feature-major, ``(M, units, B)``, so that a
layer is one batched matmul ``W @ h`` and the first layer, when every model sees the same
minibatch, is a single large matmul over all models.

The backward pass is written out (``dW = g hᵀ``, ``db = Σ g``, ``dh = Wᵀ g`` and the
activation's own derivative kernel, the one autograd calls), which avoids autograd's
bookkeeping per op and gives each model exactly the gradient of its own loss. With
``residual=True`` a layer that adds its input (``h' = h + act(W h + b)``) passes the gradient
wrt ``h'`` on to ``h`` as it is, beside ``Wᵀ g``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F

from .._rng import make_generator
from .._validation import ValidationError, check_choice, check_int
from ..initializers import apply_init, compute_fans
from ..initializers import get as get_init
from ..initializers.replay import filler
from .activations import canonical_activation
from .mlp import MLP, OUTPUTS, residual_layers

__all__ = ["StackedMLP", "ForwardCache", "STACKED_ACTIVATIONS"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_aten = torch.ops.aten

# name -> (forward, backward(grad, z, h, out) -> grad wrt z, written into out). The backward
# kernels are those autograd uses for the matching torch functions, so gradients agree with
# nn.Module training to rounding.
STACKED_ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[..., torch.Tensor]]] = {
    "relu": (torch.relu, lambda g, z, h, o: _aten.threshold_backward.grad_input(g, h, 0, grad_input=o)),
    "leaky_relu": (lambda z: F.leaky_relu(z, 0.01),
                   lambda g, z, h, o: _aten.leaky_relu_backward.grad_input(g, z, 0.01, False, grad_input=o)),
    "elu": (F.elu, lambda g, z, h, o: _aten.elu_backward.grad_input(g, 1.0, 1, 1, False, z, grad_input=o)),
    "selu": (F.selu, lambda g, z, h, o: _aten.elu_backward.grad_input(g, _SELU_ALPHA, _SELU_SCALE, 1, False, z,
                                                                       grad_input=o)),
    "gelu": (F.gelu, lambda g, z, h, o: _aten.gelu_backward.grad_input(g, z, grad_input=o)),
    "silu": (F.silu, lambda g, z, h, o: _aten.silu_backward.grad_input(g, z, grad_input=o)),
    "tanh": (torch.tanh, lambda g, z, h, o: _aten.tanh_backward.grad_input(g, h, grad_input=o)),
    "sigmoid": (torch.sigmoid, lambda g, z, h, o: _aten.sigmoid_backward.grad_input(g, h, grad_input=o)),
    "linear": (lambda z: z, lambda g, z, h, o: g),
}
# Activations whose derivative needs only the output: the pre-activation need not be kept.
_OUTPUT_ONLY = {"relu", "tanh", "sigmoid", "linear"}

Spec = str | Mapping[str, Any]


@dataclass
class ForwardCache:
    """What the backward pass needs: each layer's input and each hidden pre-activation."""

    inputs: list[torch.Tensor]  # inputs[l]: (in, B) shared by all models, or (M, in, B)
    pre: list[torch.Tensor | None]  # pre[l]: (M, out, B) pre-activation of hidden layer l, if needed
    # outs[l]: (M, out, B) act(pre) of hidden layer l where it adds its input (then inputs[l + 1] is
    # not act(pre) but inputs[l] + act(pre)), else None
    outs: list[torch.Tensor | None] = field(default_factory=list)


class StackedMLP:
    """``M`` copies of ``MLP(sizes, activation, output)`` with independent parameters.

    ``weights[l]`` is ``(M, out, in)`` and ``biases[l]`` ``(M, out)``, both views of ``flat``
    ``(P,)``. Model ``i`` equals the ``MLP`` whose Linear layer ``l`` has weight
    ``weights[l][i]`` and bias ``biases[l][i]`` (see :meth:`to_model`). ``residual``: as
    ``MLP(..., residual=True)`` (:func:`~initlab.models.mlp.residual_layers`).
    """

    def __init__(
        self, sizes: Sequence[int], activation: str, m: int, output: str = "sigmoid",
        device: str | torch.device = "cpu", bias: bool = True, residual: bool = False,
    ) -> None:
        self.sizes = [check_int(f"sizes[{i}]", s, 1) for i, s in enumerate(sizes)]
        if len(self.sizes) < 2:
            raise ValidationError(f"sizes needs at least an input and an output size, got {list(sizes)}")
        self.activation = canonical_activation(activation)
        self.output = check_choice("output", output, OUTPUTS)
        self.m = check_int("m", m, 1)
        self.device = torch.device(device)
        # bias=False: the biases stay zero (their gradient is written as zero), so each model is
        # a bias-free network (deep linear nets, Saxe et al. 2014) with the same buffer layout.
        self.bias = bool(bias)
        self.residual = bool(residual)
        self.skips = residual_layers(self.sizes, self.residual)  # per hidden layer: adds its input
        shapes = list(zip(self.sizes[1:], self.sizes[:-1], strict=False))  # (out, in) per layer
        total = sum(self.m * o * (i + 1) for o, i in shapes)
        self.flat = torch.zeros(total, device=self.device)  # (P,)
        self.weights, self.biases = self._views(self.flat)
        # Training-step scratch tensors, reused every step: fresh large allocations cost page
        # faults each time (they are mmap'ed and returned to the OS), which dominated small steps.
        self._scratch: dict[tuple[Any, ...], torch.Tensor] = {}

    def _buffer(self, key: str, *shape: int) -> torch.Tensor:
        """A reusable scratch tensor of ``shape`` (contents undefined)."""
        full = (key, *shape)
        buf = self._scratch.get(full)
        if buf is None:
            buf = self._scratch[full] = torch.empty(shape, device=self.device)
        return buf

    def _views(self, flat: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Weight ``(M, out, in)`` and bias ``(M, out)`` views of a flat ``(P,)`` buffer, layer by layer."""
        weights, biases, offset = [], [], 0
        for n_out, n_in in zip(self.sizes[1:], self.sizes[:-1], strict=False):
            size = self.m * n_out * n_in
            weights.append(flat[offset:offset + size].view(self.m, n_out, n_in))  # (M, out, in)
            offset += size
            biases.append(flat[offset:offset + self.m * n_out].view(self.m, n_out))  # (M, out)
            offset += self.m * n_out
        return weights, biases

    def grad_views(self, flat_grad: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Views of a gradient buffer shaped like ``flat``: weight grads ``(M, out, in)``, bias grads ``(M, out)``."""
        return self._views(flat_grad)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    # ----------------------------------------------------------------- building
    @classmethod
    def initialized(
        cls,
        sizes: Sequence[int],
        activation: str,
        inits: Sequence[Spec],
        init_seeds: Sequence[int],
        bias_inits: Sequence[Spec | None],
        output: str = "sigmoid",
        device: str | torch.device = "cpu",
        init_data: Any = None,
        bias: bool = True,
        residual: bool = False,
    ) -> StackedMLP:
        """M models, model ``i`` drawn exactly as ``apply_init(MLP(...), inits[i], bias_inits[i], generator=init_seeds[i])``.

        Each model draws with its own generator, layer by layer, weight then bias, as
        ``apply_init`` does, so the numbers are the same. Data-dependent schemes (``lsuv``)
        build the ``MLP`` and run ``apply_init(..., data=init_data)``. With ``bias=False`` no
        bias is drawn (as ``apply_init`` on a bias-free network) and the biases stay zero.
        """
        net = cls(sizes, activation, len(inits), output, device, bias, residual)
        resolved: dict[str, Any] = {}

        def resolve(spec: Spec | None) -> Any:  # an Initializer, or None
            key = repr(spec)
            if key not in resolved:
                resolved[key] = None if spec is None else get_init(spec)
            return resolved[key]

        layer_fans = [compute_fans(tuple(weight.shape[1:])) for weight in net.weights]
        on_cpu = net.device.type == "cpu"
        fills: dict[tuple[str, str], list[tuple[Any, Any]]] = {}  # (weight spec, bias spec) -> per layer fillers

        def layer_fillers(w_spec: Spec, b_spec: Spec | None) -> list[tuple[Any, Any]]:
            key = (repr(w_spec), repr(b_spec))
            if key not in fills:  # each scheme recorded once per layer shape, replayed for every model
                w_init, b_init = resolve(w_spec), resolve(b_spec)
                # zero biases need no fill: the buffer starts at zero and "zeros" draws nothing
                draw_bias = net.bias and b_init is not None and b_init.name != "zeros"
                fills[key] = [(filler(w_init, tuple(weight.shape[1:])),
                               filler(b_init, tuple(b.shape[1:]), fans) if draw_bias else None)
                              for weight, b, fans in zip(net.weights, net.biases, layer_fans, strict=False)]
            return fills[key]

        slots = [weight.unbind(0) for weight in net.weights]  # each model's (out, in) view, made once
        shared_gen: torch.Generator | None = None
        for i, (w_spec, b_spec, seed) in enumerate(zip(inits, bias_inits, init_seeds, strict=False)):
            w_init, b_init = resolve(w_spec), resolve(b_spec)
            if w_init.scheme.kind == "data-dependent":
                model = MLP(net.sizes, net.activation, net.output, residual=net.residual)
                data = None if init_data is None else torch.as_tensor(init_data, dtype=torch.float32)
                fitted = apply_init(model, w_init, b_init if bias else None, generator=seed, data=data)
                net.set_model(i, cast(MLP, fitted))  # account=False: the model itself
                if not bias:
                    for b in net.biases:
                        b[i].zero_()
                continue
            if b_init is None and bias:  # apply_init(bias=None) leaves nn.Linear's own bias draw
                raise ValidationError("bias init None is not supported by the stacked model; give a scheme")
            if isinstance(seed, int) and not isinstance(seed, bool):  # one Generator, re-seeded: a fresh one's state
                shared_gen = shared_gen or torch.Generator()
                gen = shared_gen.manual_seed(seed)
            else:
                gen = make_generator(seed)
            with torch.no_grad():
                # (not named ``bias``: that would rebind the argument the next model's branch tests)
                for l, (weight, layer_bias, (fill_w, fill_b)) in enumerate(zip(net.weights, net.biases,
                                                                               layer_fillers(w_spec, b_spec), strict=False)):
                    if on_cpu:  # draw straight into the model's slot (same numbers, no copy)
                        fill_w(slots[l][i], gen)
                        if fill_b is not None:
                            fill_b(layer_bias[i], gen)
                        continue
                    w = torch.empty(weight.shape[1:])  # (out, in): drawn on CPU as apply_init does
                    fill_w(w, gen)
                    weight[i].copy_(w)
                    if fill_b is not None:
                        b = torch.empty(layer_bias.shape[1])  # (out,)
                        fill_b(b, gen)
                        layer_bias[i].copy_(b)
        return net

    @classmethod
    def from_models(cls, models: Sequence[MLP], device: str | torch.device = "cpu") -> StackedMLP:
        """Stack ``MLP`` models of the same sizes, activation and residual flag (parameters copied)."""
        if not models:
            raise ValidationError("from_models needs at least one model")
        first = models[0]
        net = cls(first.sizes, first.activation, len(models), first.output_kind, device, residual=first.residual)
        for i, model in enumerate(models):
            if list(model.sizes) != net.sizes:
                raise ValidationError(f"models[{i}] has sizes {model.sizes}, expected {net.sizes}")
            if model.residual != net.residual:
                raise ValidationError(f"models[{i}] has residual={model.residual}, expected {net.residual}")
            net.set_model(i, model)
        return net

    @torch.no_grad()
    def set_model(self, i: int, model: MLP) -> None:
        """Copy an ``MLP``'s parameters into slot ``i``."""
        for layer, weight, bias in zip(model.linears, self.weights, self.biases, strict=False):
            weight[i].copy_(layer.weight)
            bias[i].copy_(layer.bias)

    @torch.no_grad()
    def to_model(self, i: int) -> MLP:
        """Model ``i`` as an ordinary ``MLP`` on the CPU (parameters copied)."""
        model = MLP(self.sizes, self.activation, self.output, residual=self.residual)
        for layer, weight, bias in zip(model.linears, self.weights, self.biases, strict=False):
            layer.weight.copy_(weight[i])
            layer.bias.copy_(bias[i])
        return model

    def to_models(self) -> list[MLP]:
        """All M models as ordinary ``MLP`` modules."""
        return [self.to_model(i) for i in range(self.m)]

    def select(self, index: torch.Tensor) -> StackedMLP:
        """A new stack holding the models at ``index`` (parameters copied)."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        out = StackedMLP(self.sizes, self.activation, len(index), self.output, self.device, self.bias, self.residual)
        with torch.no_grad():
            for src, dst in zip(self.weights + self.biases, out.weights + out.biases, strict=False):
                dst.copy_(src.index_select(0, index))
        return out

    def per_model_flat(self, values: torch.Tensor) -> torch.Tensor:
        """A buffer laid out like ``flat`` ``(P,)`` holding ``values[i]`` ``(M,)`` at every parameter of model ``i``."""
        parts = []
        for n_out, n_in in zip(self.sizes[1:], self.sizes[:-1], strict=False):
            for per_model in (n_out * n_in, n_out):
                parts.append(values.to(self.flat).unsqueeze(1).expand(self.m, per_model).reshape(-1))
        return torch.cat(parts)

    def select_flat(self, flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Rows ``index`` of any buffer laid out like ``flat`` (optimizer state), as a new flat buffer."""
        m_new = len(index)
        parts = []
        offset = 0
        for n_out, n_in in zip(self.sizes[1:], self.sizes[:-1], strict=False):
            for per_model in (n_out * n_in, n_out):
                block = flat[offset:offset + self.m * per_model].view(self.m, per_model)  # (M, k)
                parts.append(block.index_select(0, index).reshape(m_new * per_model))
                offset += self.m * per_model
        return torch.cat(parts)

    # ----------------------------------------------------------------- compute
    def forward(self, x: torch.Tensor, cache: ForwardCache | None = None) -> torch.Tensor:
        """Logits ``(M, K, B)`` for inputs ``x``: ``(B, in)`` shared by all models or ``(M, B, in)``.

        With a ``cache`` (training), keeps what :meth:`backward` needs and writes into reused
        scratch tensors: the logits are valid until the next training forward.
        """
        act, _ = STACKED_ACTIVATIONS[self.activation]
        keep_pre = self.activation not in _OUTPUT_ONLY
        train = cache is not None
        h = x.transpose(-2, -1)  # (in, B) or (M, in, B)
        b = h.shape[-1]
        last = self.n_layers - 1
        for l, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=False)):
            m, n_out, n_in = weight.shape
            z = self._buffer(f"z{l}", m, n_out, b) if train else torch.empty(m, n_out, b, device=self.device)
            if cache is not None:  # training
                cache.inputs.append(h)
            if h.dim() == 2:  # every model sees the same inputs: one matmul for all M
                torch.addmm(bias.reshape(m * n_out, 1), weight.reshape(m * n_out, n_in), h, out=z.view(m * n_out, b))
            elif n_out == 1:  # one unit: a weighted sum beats a batch of 1-row matmuls
                prod = self._buffer("prod", m, n_in, b) if train else None
                prod = torch.mul(weight.transpose(1, 2), h, out=prod) if train else weight.transpose(1, 2) * h
                torch.sum(prod, 1, keepdim=True, out=z).add_(bias.unsqueeze(-1))  # (M, 1, B)
            else:
                torch.baddbmm(bias.unsqueeze(-1), weight, h, out=z)  # (M, out, B)
            if l == last:
                return z
            if cache is not None:  # training
                cache.pre.append(z if keep_pre else None)
            a = act(z) if keep_pre else _inplace(self.activation, z)  # (M, out, B)
            if cache is not None:
                cache.outs.append(a if self.skips[l] else None)
            if self.skips[l]:  # h + act(W h + b): h is (M, out, B), never the shared input
                h = torch.add(h, a, out=self._buffer(f"r{l}", m, n_out, b)) if train else h + a
            else:
                h = a
        raise AssertionError("unreachable")

    @torch.no_grad()
    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-activation outputs of every hidden layer, each ``(M, units, B)``, for inputs ``x`` ``(B, in)``."""
        act, _ = STACKED_ACTIVATIONS[self.activation]
        h = x.transpose(-2, -1)  # (in, B) or (M, in, B)
        outs = []
        for weight, bias, skip in zip(self.weights[:-1], self.biases[:-1], self.skips, strict=True):
            a = act(torch.matmul(weight, h) + bias.unsqueeze(-1))  # (M, out, B)
            h = h + a if skip else a
            outs.append(h)
        return outs

    def backward(self, cache: ForwardCache, logits: torch.Tensor, grad_logits: torch.Tensor,
                 grad_flat: torch.Tensor) -> None:
        """Write dLoss/dparams into ``grad_flat`` (laid out like ``flat``) from ``grad_logits`` ``(M, K, B)``."""
        _, act_backward = STACKED_ACTIVATIONS[self.activation]
        grad_w, grad_b = self.grad_views(grad_flat)
        g = grad_logits  # (M, out, B): gradient wrt layer l's pre-activation
        carry: torch.Tensor | None = None  # the gradient wrt inputs[l + 1] when hidden layer l adds its input
        for l in range(self.n_layers - 1, -1, -1):
            h_in = cache.inputs[l]  # (in, B) or (M, in, B)
            m, n_out, n_in = self.weights[l].shape
            b = g.shape[-1]
            if h_in.dim() == 2:  # shared inputs: [dW | db]ᵀ = [h; 1] gᵀ, one wide matmul for all M
                aug = self._buffer(f"aug{l}", n_in + 1, b)  # (in + 1, B)
                aug[:n_in].copy_(h_in)
                aug[n_in].fill_(1.0)
                # As a batch of nb equal column blocks: MKL threads a bmm over its batch, not a
                # matmul with 3 output rows (2 threads: twice as fast; 1 thread: a little faster).
                rows = m * n_out
                nb = next(k for k in (16, 8, 4, 2, 1) if rows % k == 0)
                both = self._buffer(f"dwb{l}", nb, n_in + 1, rows // nb)  # (nb, in + 1, M * out / nb)
                torch.bmm(aug.expand(nb, n_in + 1, b), g.reshape(nb, rows // nb, b).transpose(1, 2), out=both)
                dw = grad_w[l].view(rows, n_in)
                if n_in <= 8:  # column by column: a strided copy per input beats one transposing copy
                    for k in range(n_in):
                        dw[:, k].view(nb, rows // nb).copy_(both[:, k])
                else:
                    dw.view(nb, rows // nb, n_in).copy_(both[:, :n_in].transpose(1, 2))
                grad_b[l].view(nb, rows // nb).copy_(both[:, n_in])
            else:
                torch.bmm(g, h_in.transpose(1, 2), out=grad_w[l])  # (M, out, in)
                torch.sum(g, dim=-1, out=grad_b[l])  # (M, out)
            if not self.bias:
                grad_b[l].zero_()
            if l == 0:
                break
            dh = self._buffer(f"dh{l % 2}", m, n_in, b)
            if n_out == 1:  # outer product: cheaper than a batch of rank-1 matmuls
                torch.mul(self.weights[l].transpose(1, 2), g, out=dh)  # (M, in, B)
            else:
                torch.bmm(self.weights[l].transpose(1, 2), g, out=dh)  # (M, in, B)
            if carry is not None:  # h_{l+1} = h_l + act(...): dL/dh_l gains dL/dh_{l+1} itself
                dh.add_(carry)
            if self.skips[l - 1]:  # layer l's input is h + act(pre): the derivative needs act(pre); dh is kept
                a = cache.outs[l - 1]
                assert a is not None, "forward caches act(pre) of a layer that adds its input"
                g = act_backward(dh, cache.pre[l - 1], a, self._buffer(f"g{l}", m, n_in, b))
                carry = dh
            else:
                g = act_backward(dh, cache.pre[l - 1], h_in, dh)
                carry = None


def _inplace(activation: str, z: torch.Tensor) -> torch.Tensor:
    """Apply an output-only activation in place (its input is not needed by the backward)."""
    if activation == "relu":
        return z.relu_()
    if activation == "tanh":
        return z.tanh_()
    if activation == "sigmoid":
        return z.sigmoid_()
    return z
