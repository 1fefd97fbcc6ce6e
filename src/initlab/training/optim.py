"""Optimizers with Keras' formulas and defaults, and the loss for a model's output.

Keras 3 and PyTorch put Adam's and RMSprop's epsilon in different places, which matters when
gradients are small (|g| ~ 1e-4, the regime of zero-initialized networks: the RMSprop step
differs 10x). initlab follows Keras (``keras/src/optimizers/adam.py``, ``rmsprop.py``):

    Adam      m <- m + (1 - beta1)(g - m);  v <- v + (1 - beta2)(g^2 - v)
              p <- p - lr_t m / (sqrt(v) + eps),  lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)
              (eps is "epsilon hat", added to the uncorrected sqrt(v); torch adds it to sqrt(v_hat))
    RMSprop   v <- rho v + (1 - rho) g^2;  step = lr g / sqrt(v + eps)   (torch: / (sqrt(v) + eps))
              momentum mu > 0: b <- mu b + step; p <- p - b   (else p <- p - step)
    SGD       p <- p - lr b, b <- mu b + g (torch's form; Keras' b <- mu b - lr g, p <- p + b is
              the same update for a constant learning rate)

The update functions below act on any tensors, so the single-model :class:`KerasAdam` /
:class:`KerasRMSprop` and the batched trainer's flat-buffer optimizers run the same arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import cast, overload

import numpy as np
import torch
from torch import nn
from torch.optim.optimizer import ParamsT

from .._defaults import DEFAULT_LR, OPTIMIZERS  # noqa: F401  (re-exported: initlab.training)
from .._validation import check_choice, check_float

__all__ = ["OPTIMIZERS", "DEFAULT_LR", "make_optimizer", "loss_for", "KerasAdam", "KerasRMSprop"]

_HAS_FUSED_ADAM = hasattr(torch, "_fused_adam_")


def _sqrt(src: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = sqrt(src)``. On the CPU through numpy's hardware square root: torch's vectorised
    CPU sqrt is a software routine that is several times slower on the zeros and subnormals
    Adam's second moments are full of (both are correctly rounded, so the numbers are the same)."""
    if src.device.type == "cpu":
        np.sqrt(src.numpy(), out=out.numpy())
        return out
    return torch.sqrt(src, out=out)


@lru_cache(maxsize=8192)  # every chunk of a batched fit, and every fit, asks for the same steps
def adam_step_size(lr: float, beta1: float, beta2: float, step: int) -> float:
    """Keras' lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) for step t = 1, 2, ..., in float32 as Keras
    computes it for float32 variables (float32 0.999^t is off by up to ~1e-5 relative, so this
    matters at that level)."""
    f, t = np.float32, np.float32(step)
    return float(f(lr) * np.sqrt(f(1) - np.power(f(beta2), t)) / (f(1) - np.power(f(beta1), t)))


def use_fused_adam(params: Sequence[torch.Tensor]) -> bool:
    """Whether :func:`keras_adam_` takes torch's fused CPU Adam kernel for ``params``."""
    return _HAS_FUSED_ADAM and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params)


def keras_adam_(
    params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], ms: Sequence[torch.Tensor],
    vs: Sequence[torch.Tensor], scratch: Sequence[torch.Tensor], step: int, lr: float, beta1: float,
    beta2: float, eps: float, fused: bool, step_t: torch.Tensor | None = None,
) -> None:
    """One Keras Adam step (see the module docstring) on each ``params[i]`` in place, step t = ``step``.

    ``fused``: torch's fused CPU kernel (what ``torch.optim.Adam(fused=True)`` runs; 2-3x faster),
    which computes p - (lr'/bc1) m / (sqrt(v)/sqrt(bc2) + eps'), bc = 1 - beta^t. With
    lr' = lr_t bc1 / sqrt(bc2) and eps' = eps / sqrt(bc2) that is p - lr_t m / (sqrt(v) + eps),
    Keras' update; it differs from the plain arithmetic only in rounding (tested). ``step_t`` is
    a 0-d tensor the kernel reads the step from. Otherwise ``scratch[i]`` (shaped like
    ``params[i]``) holds sqrt(v) + eps.
    """
    if fused:
        if step_t is None:
            step_t = torch.zeros(())
        step_t.fill_(float(step))
        lr_f, eps_f = _fused_adam_args(lr, beta1, beta2, eps, step)
        # the binding takes any sequence of tensors; its stub lists only list and tuple
        torch._fused_adam_(params, grads, ms, vs, [], [step_t] * len(params), lr=lr_f, beta1=beta1,  # type: ignore[call-overload]
                           beta2=beta2, weight_decay=0.0, eps=eps_f, amsgrad=False, maximize=False)
        return
    lr_t = adam_step_size(lr, beta1, beta2, step)
    for p, g, m, v, denom in zip(params, grads, ms, vs, scratch, strict=False):
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        _sqrt(v, denom).add_(eps)
        p.addcdiv_(m, denom, value=-lr_t)


@lru_cache(maxsize=8192)
def _fused_adam_args(lr: float, beta1: float, beta2: float, eps: float, step: int) -> tuple[float, float]:
    """(lr', eps') that make torch's fused Adam kernel compute Keras' update (see :func:`keras_adam_`)."""
    bc1, bc2_sqrt = 1.0 - beta1**step, math.sqrt(1.0 - beta2**step)  # as the kernel computes them
    return adam_step_size(lr, beta1, beta2, step) * bc1 / bc2_sqrt, eps / bc2_sqrt


def keras_rmsprop_(
    param: torch.Tensor, grad: torch.Tensor, v: torch.Tensor, scratch: torch.Tensor,
    momentum_buffer: torch.Tensor | None, lr: float, rho: float, momentum: float, eps: float,
) -> None:
    """One Keras RMSprop step (see the module docstring) on ``param`` in place.

    ``scratch`` (shaped like ``param``) holds sqrt(v + eps); ``momentum_buffer`` (zeros at
    the start) is used when ``momentum > 0``.
    """
    v.mul_(rho).addcmul_(grad, grad, value=1 - rho)
    root = _sqrt(torch.add(v, eps, out=scratch), scratch)
    if momentum > 0:
        assert momentum_buffer is not None, "momentum > 0 needs a momentum_buffer"
        momentum_buffer.mul_(momentum).addcdiv_(grad, root, value=lr)
        param.sub_(momentum_buffer)
    else:
        param.addcdiv_(grad, root, value=-lr)


class KerasAdam(torch.optim.Optimizer):
    """Adam as Keras 3 computes it: epsilon added to the uncorrected sqrt(v) ("epsilon hat").

    Defaults are Keras': lr 1e-3, betas (0.9, 0.999), eps 1e-7. Kingma & Ba, 2015, "Adam: A
    Method for Stochastic Optimization" (the formula before section 2.1); ``keras.optimizers.Adam``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-7) -> None:
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = _evaluate_closure(closure)
        for group in self.param_groups:
            by_step: dict[int, list[torch.Tensor]] = {}  # one call per step count (all equal in a fit)
            for p in group["params"]:
                if p.grad is None:
                    continue
                s = self.state[p]
                if not s:
                    s.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p),
                             denom=torch.empty_like(p), step_t=torch.zeros((), device=p.device))
                s["step"] += 1
                by_step.setdefault(s["step"], []).append(p)
            beta1, beta2 = group["betas"]
            for step, params in by_step.items():
                states = [self.state[p] for p in params]
                keras_adam_(params, [cast(torch.Tensor, p.grad) for p in params], [s["exp_avg"] for s in states],
                            [s["exp_avg_sq"] for s in states], [s["denom"] for s in states], step, group["lr"],
                            beta1, beta2, group["eps"], use_fused_adam(params), states[0]["step_t"])
        return loss


def _evaluate_closure(closure: Callable[[], float] | None) -> float | None:
    """The loss of ``closure`` (re-evaluated with gradients on), as torch optimizers do; None without one."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class KerasRMSprop(torch.optim.Optimizer):
    """RMSprop as Keras 3 computes it: lr g / sqrt(v + eps), momentum accumulating the steps.

    Defaults are Keras': lr 1e-3, rho 0.9, eps 1e-7, momentum 0 (not centered). Hinton, 2012,
    "Neural Networks for Machine Learning", lecture 6e; ``keras.optimizers.RMSprop``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, rho: float = 0.9, eps: float = 1e-7,
                 momentum: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "momentum": momentum})

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = _evaluate_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                s = self.state[p]
                if not s:
                    s.update(step=0, square_avg=torch.zeros_like(p), scratch=torch.empty_like(p),
                             momentum_buffer=torch.zeros_like(p) if group["momentum"] > 0 else None)
                s["step"] += 1
                keras_rmsprop_(p, p.grad, s["square_avg"], s["scratch"], s["momentum_buffer"], group["lr"],
                               group["rho"], group["momentum"], group["eps"])
        return loss


def make_optimizer(
    params: Iterable[torch.Tensor], name: str = "adam", learning_rate: float | None = None, momentum: float = 0.0
) -> torch.optim.Optimizer:
    """An optimizer with Keras' formulas and defaults (see the module docstring).

    adam: :class:`KerasAdam`, betas (0.9, 0.999), eps 1e-7. sgd: ``torch.optim.SGD`` with
    optional (heavy-ball) ``momentum``. rmsprop: :class:`KerasRMSprop`, rho 0.9, eps 1e-7.
    """
    name = check_choice("optimizer", str(name).lower(), OPTIMIZERS)
    lr = DEFAULT_LR[name] if learning_rate is None else check_float("learning_rate", learning_rate, 0.0, strict_minimum=True)
    momentum = check_float("momentum", momentum, 0.0, 1.0)
    if name == "adam":
        return KerasAdam(params, lr=lr, betas=(0.9, 0.999), eps=1e-7)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    return KerasRMSprop(params, lr=lr, rho=0.9, eps=1e-7, momentum=momentum)


def loss_for(n_outputs: int) -> nn.Module:
    """Binary cross-entropy on one sigmoid logit, cross-entropy on several (both from logits)."""
    return nn.BCEWithLogitsLoss() if n_outputs == 1 else nn.CrossEntropyLoss()
