"""The trainer of the transfer grid: ``M`` networks of one width at once, a learning rate per network.

Parameters are stacked (``name -> [M, ...]``); the loss is the sum of the ``M`` networks' mean
losses, so one backward pass gives each network its own gradient (the networks share no
weights). Adam (Kingma & Ba 2015; beta1 0.9, beta2 0.999, eps 1e-8, bias-corrected, no weight
decay) runs on the stacked tensors with a learning rate ``lr[j] * lr_factor[name]`` for network
``j`` and parameter ``name`` (the parametrization's per-layer factor).

Network ``j`` sees the minibatches of its seed: one shuffle per epoch from a generator of
``seeds[j]``, the same at every learning rate. User models go through ``torch.func``
(``functional_call`` under ``vmap``), or a plain loop over the networks where vmap fails.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .._rng import make_generator
from .families import Forward, Task

__all__ = ["train_stacked", "stacked_module_forward", "BETAS", "EPS"]

BETAS = (0.9, 0.999)
EPS = 1e-8


def _losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-network mean cross-entropy: logits (M, B, ..., C), y (M, B, ...) -> (M,)."""
    M, C = logits.shape[0], logits.shape[-1]
    flat = F.cross_entropy(logits.reshape(-1, C), y.reshape(-1), reduction="none")
    return flat.view(M, -1).mean(1)


def _batch_indices(seeds: list[int], n: int, batch: int, steps: int) -> torch.Tensor:
    """(steps, M, batch) row indices: per seed, a fresh permutation each epoch (the last partial batch dropped)."""
    per_epoch = max(1, n // batch)
    epochs = -(-steps // per_epoch)
    out = {}
    for s in dict.fromkeys(seeds):
        g = make_generator(int(s) + 7919)
        rows = torch.cat([torch.randperm(n, generator=g)[: per_epoch * batch] for _ in range(epochs)])
        out[s] = rows[: steps * batch].view(steps, batch)
    return torch.stack([out[s] for s in seeds], dim=1)


@torch.no_grad()
def _evaluate(forward: Forward, params: dict[str, torch.Tensor], task: Task, M: int, chunk: int = 512) -> torch.Tensor:
    """Mean loss of each network on ``task.eval_x`` (in chunks of rows)."""
    total = torch.zeros(M, dtype=torch.float64)
    n = task.eval_x.shape[0]
    for start in range(0, n, chunk):
        x = task.eval_x[start:start + chunk].unsqueeze(0).expand(M, *task.eval_x[start:start + chunk].shape)
        y = task.eval_y[start:start + chunk].unsqueeze(0).expand(M, *task.eval_y[start:start + chunk].shape)
        total += _losses(forward(params, x), y).double() * x.shape[1]
    return (total / n).float()


def train_stacked(forward: Forward, params: dict[str, torch.Tensor], lr_factors: dict[str, float],
                  lrs: list[float], seeds: list[int], task: Task, steps: int, batch: int) -> list[float]:
    """Train the ``M = len(lrs)`` stacked networks for ``steps`` Adam steps; return each one's loss on
    ``task.eval_x`` after the budget (``nan`` where it diverged)."""
    M = len(lrs)
    lr = torch.tensor(lrs, dtype=torch.float32)
    state = {name: (torch.zeros_like(p), torch.zeros_like(p), torch.empty_like(p)) for name, p in params.items()}
    shapes = {name: (M,) + (1,) * (p.dim() - 1) for name, p in params.items()}
    alive = torch.ones(M, dtype=torch.bool)
    index = _batch_indices(seeds, task.x.shape[0], batch, steps)  # (steps, M, batch)
    b1, b2 = BETAS
    for t in range(1, steps + 1):
        rows = index[t - 1]
        losses = _losses(forward(params, task.x[rows]), task.y[rows])
        alive &= torch.isfinite(losses.detach())
        grads = torch.autograd.grad(losses.sum(), list(params.values()))
        with torch.no_grad():
            # lr m_hat / (sqrt(v_hat) + eps) = [lr sqrt(c2) / c1] m / (sqrt(v) + eps sqrt(c2)), c = 1 - beta^t;
            # a diverged network stops (lr 0); its own weights may hold nan, which reach no other network
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            step = lr * alive * (c2 ** 0.5 / c1)
            for (name, p), g in zip(params.items(), grads, strict=True):
                m, v, buf = state[name]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                torch.sqrt(v, out=buf).add_(EPS * c2 ** 0.5)
                torch.div(m, buf, out=buf).mul_((step * lr_factors[name]).view(shapes[name]))
                p.sub_(buf)
    final = _evaluate(forward, params, task, M)
    final[~alive | ~torch.isfinite(final)] = float("nan")
    return [float(v) for v in final]


def stacked_module_forward(models: list[nn.Module]) -> tuple[dict[str, torch.Tensor], Forward]:
    """Stack ``M`` copies of a user's model: parameters ``[M, ...]`` and a forward over (M, B, ...)
    inputs through ``torch.func.functional_call`` under ``vmap``, or a plain loop where vmap fails."""
    from torch.func import functional_call, vmap

    base = models[0]
    names = [n for n, _ in base.named_parameters()]
    params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).requires_grad_(True)
              for n in names}

    def one(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = functional_call(base, p, (x,))
        return out

    batched = vmap(one)

    def looped(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.stack([one({n: t[j] for n, t in p.items()}, x[j]) for j in range(x.shape[0])])

    mode: dict[str, Forward | None] = {"forward": None}

    def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        chosen = mode["forward"]
        if chosen is None:
            try:
                out = batched(p, x)
                mode["forward"] = batched
                return out
            except Exception:  # data-dependent control flow, in-place ops on inputs, ...: one network at a time
                chosen = mode["forward"] = looped
        return chosen(p, x)

    forward.mode = mode  # type: ignore[attr-defined]
    return params, forward
