"""Train M networks of one architecture at once, matching M runs of :class:`Trainer`.

The M models live in a :class:`~initlab.models.stacked.StackedMLP` (parameters ``(M, out, in)``
in one flat buffer). A step is one batched forward, a hand-written backward of the summed
per-model losses (so each model gets exactly its own gradient) and one elementwise optimizer
step over the flat buffer, which equals M independent Adam/RMSprop/SGD optimizers.

Minibatch order: models that share an order seed share the order (common random numbers: the
minibatch is gathered once and the first layer is one matmul for all of them); models with
different order seeds each follow their own order through gathered indices. Both come from
:func:`~initlab.training.order.minibatch_order`, the function ``Trainer`` uses too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import ValidationError, check_choice, check_float, check_int
from ..models import MLP
from ..models.stacked import ForwardCache, StackedMLP
from . import fused as fused_path
from .optim import DEFAULT_LR, OPTIMIZERS
from .order import minibatch_orders
from .trainer import as_tensors

__all__ = ["BatchedTrainer", "FlatAdam", "FlatSGD", "FlatRMSprop", "make_flat_optimizer"]

Spec = str | Mapping[str, Any]
# Evaluate at most this many activations (M * units * rows) at once; larger sets go in row chunks.
_EVAL_ELEMENTS = 1 << 24
# Default chunk: models stepped together so one hidden activation (m, units, B) holds about this many
# values (8 MB). Measured on the classic workload: bigger chunks win (fewer kernel launches per step,
# and two threads need large kernels); a cache-sized chunk (2**19) was 5-25 % slower.
_CHUNK_ELEMENTS = 1 << 21


def _per_model(value: Any, m: int, field: str) -> list[Any]:
    if isinstance(value, (str, Mapping, int)) or value is None:
        return [value] * m
    values: list[Any] = list(value)
    if len(values) != m:
        raise ValidationError(f"{field} needs one entry per model ({m}), got {len(values)}")
    return values


# --------------------------------------------------------------------------- optimizers
from .optim import keras_adam_, keras_rmsprop_, use_fused_adam  # noqa: E402  (kept in this section)


class FlatAdam:
    """Keras' Adam on a flat parameter buffer: the arithmetic of :class:`~initlab.training.optim.KerasAdam`
    (both call :func:`~initlab.training.optim.keras_adam_`), so it equals M single-model optimizers.

    Keras defaults: betas (0.9, 0.999), eps 1e-7 added to the uncorrected sqrt(v). Kingma & Ba,
    2015, "Adam: A Method for Stochastic Optimization".
    """

    def __init__(self, numel: int, lr: float, device: torch.device, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-7) -> None:
        self.lr, self.betas, self.eps, self.steps = lr, betas, eps, 0
        self.state = {"exp_avg": torch.zeros(numel, device=device), "exp_avg_sq": torch.zeros(numel, device=device)}
        self._denom = torch.empty(numel, device=device)  # reused: no allocation per step
        self._step_t = torch.zeros((), device=device)  # the step count as the fused kernel reads it
        self._fused = use_fused_adam([self._denom])  # torch's fused CPU kernel (see keras_adam_)

    def resize(self, numel: int) -> None:
        """New scratch space after the state was compacted."""
        self._denom = torch.empty(numel, device=self._denom.device)

    def step(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        self.steps += 1
        keras_adam_([param], [grad], [self.state["exp_avg"]], [self.state["exp_avg_sq"]], [self._denom], self.steps,
                    self.lr, *self.betas, self.eps, self._fused, self._step_t)


class FlatSGD:
    """SGD with optional heavy-ball momentum, the arithmetic of ``torch.optim.SGD``."""

    def __init__(self, numel: int, lr: float, device: torch.device, momentum: float = 0.0) -> None:
        self.lr, self.momentum, self.steps = lr, momentum, 0
        self.state: dict[str, torch.Tensor] = {}

    def resize(self, numel: int) -> None:
        """Nothing to resize: SGD keeps no scratch space."""

    def step(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        self.steps += 1
        # per-model learning rates: a (P,) tensor laid out like the parameters, kept in ``state``
        # so that freezing diverged models compacts it with the rest of the state
        lr = self.state.get("lr")
        if self.momentum == 0:
            param.add_(grad, alpha=-self.lr) if lr is None else param.addcmul_(grad, lr, value=-1.0)
            return
        buf = self.state.get("momentum_buffer")
        if buf is None:
            buf = self.state["momentum_buffer"] = grad.clone()
        else:
            buf.mul_(self.momentum).add_(grad)
        param.add_(buf, alpha=-self.lr) if lr is None else param.addcmul_(buf, lr, value=-1.0)


class FlatRMSprop:
    """Keras' RMSprop (rho 0.9, eps 1e-7, lr g / sqrt(v + eps)) on a flat buffer: the arithmetic of
    :class:`~initlab.training.optim.KerasRMSprop` (both call :func:`~initlab.training.optim.keras_rmsprop_`).
    Hinton, 2012, lecture 6e."""

    def __init__(self, numel: int, lr: float, device: torch.device, momentum: float = 0.0,
                 alpha: float = 0.9, eps: float = 1e-7) -> None:
        self.lr, self.momentum, self.alpha, self.eps, self.steps = lr, momentum, alpha, eps, 0
        self.state = {"square_avg": torch.zeros(numel, device=device)}
        if momentum > 0:
            self.state["momentum_buffer"] = torch.zeros(numel, device=device)
        self._root = torch.empty(numel, device=device)  # reused: no allocation per step

    def resize(self, numel: int) -> None:
        """New scratch space after the state was compacted."""
        self._root = torch.empty(numel, device=self._root.device)

    def step(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        self.steps += 1
        keras_rmsprop_(param, grad, self.state["square_avg"], self._root, self.state.get("momentum_buffer"),
                       self.lr, self.alpha, self.momentum, self.eps)


FlatOptimizer = FlatAdam | FlatSGD | FlatRMSprop


def make_flat_optimizer(name: str, numel: int, learning_rate: float | None, momentum: float,
                        device: torch.device) -> FlatOptimizer:
    """The flat-buffer twin of :func:`~initlab.training.make_optimizer` (same defaults)."""
    name = check_choice("optimizer", str(name).lower(), OPTIMIZERS)
    lr = DEFAULT_LR[name] if learning_rate is None else check_float("learning_rate", learning_rate, 0.0, strict_minimum=True)
    momentum = check_float("momentum", momentum, 0.0, 1.0)
    if name == "adam":
        return FlatAdam(numel, lr, device)
    if name == "sgd":
        return FlatSGD(numel, lr, device, momentum)
    return FlatRMSprop(numel, lr, device, momentum)


# --------------------------------------------------------------------------- losses
LOSSES = ("auto", "mse")


def _mse_grad(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared error as Keras' ``"mse"``: per-model mean over rows and outputs of ``(f - y)^2``
    ``(M,)``, and its gradient ``2 (f - y) / (B K)`` ``(M, K, B)``; ``y`` is ``(B, K)`` float."""
    m, k, b = logits.shape
    diff = logits - y.transpose(-2, -1)  # (M, K, B); y (B, K) or (M, B, K)
    loss = diff.square().mean(dim=(1, 2))
    return loss, diff.mul_(2.0 / (b * k))


def _loss_grad_correct(logits: torch.Tensor, y: torch.Tensor, loss_name: str = "auto") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-model mean loss ``(M,)``, dLoss/dlogits ``(M, K, B)`` and accuracy ``(M,)``.

    One output: binary cross-entropy from logits, target ``y`` ``(B,)`` or ``(M, B)`` float.
    Several: cross-entropy, ``y`` class indices. Gradients are those autograd computes for the
    mean loss: ``(sigmoid(z) - y) / B`` and ``(softmax(z) - onehot(y)) / B``. ``loss_name="mse"``:
    squared error (:func:`_mse_grad`), ``y`` float ``(B, K)``; accuracy is NaN (no classes).
    """
    m, k, b = logits.shape
    if loss_name == "mse":
        loss, grad = _mse_grad(logits, y)
        return loss, grad, torch.full((m,), float("nan"), device=logits.device)
    if k == 1:
        z = logits[:, 0, :]  # (M, B)
        target = y.expand(m, b)
        loss = F.binary_cross_entropy_with_logits(z, target, reduction="none").mean(-1)
        grad = (torch.sigmoid(z) - target).div_(b).unsqueeze(1)  # (M, 1, B)
        correct = ((z > 0).float() == target).float().mean(-1)
        return loss, grad, correct
    target = y.expand(m, b)
    log_p = torch.log_softmax(logits, dim=1)  # (M, K, B)
    loss = F.nll_loss(log_p, target, reduction="none").mean(-1)
    grad = log_p.exp_()
    grad.scatter_add_(1, target.unsqueeze(1), torch.full((m, 1, b), -1.0, device=logits.device)).div_(b)
    correct = (logits.argmax(1) == target).float().mean(-1)
    return loss, grad, correct


def _train_loss_grad(logits: torch.Tensor, y: torch.Tensor, loss_out: torch.Tensor, count_out: torch.Tensor,
                     loss_name: str = "auto") -> torch.Tensor:
    """dLoss/dlogits ``(M, K, B)`` of a training step; writes the per-model mean loss and the
    number of correct predictions (float) into ``loss_out`` and ``count_out`` ``(M,)``.

    The same arithmetic as :func:`_loss_grad_correct` with fewer kernels (a step's bookkeeping
    is a large share of a small network's step).
    """
    m, k, b = logits.shape
    if loss_name == "mse":
        loss, grad = _mse_grad(logits, y)
        loss_out.copy_(loss)
        count_out.fill_(float("nan"))
        return grad
    if k == 1:
        z = logits[:, 0, :]  # (M, B)
        target = y.expand(m, b)
        torch.mean(F.binary_cross_entropy_with_logits(z, target, reduction="none"), -1, out=loss_out)
        # y (B,) broadcasts: no (M, B) comparison pass
        torch.sum(torch.eq(z > 0, y > 0.5), -1, dtype=torch.float32, out=count_out)
        return torch.sigmoid(z).sub_(y).div_(b).unsqueeze(1)  # (M, 1, B)
    target = y.expand(m, b)
    log_p = torch.log_softmax(logits, dim=1)  # (M, K, B)
    torch.mean(F.nll_loss(log_p, target, reduction="none"), -1, out=loss_out)
    torch.sum(logits.argmax(1) == target, -1, dtype=torch.float32, out=count_out)
    grad = log_p.exp_()
    grad.scatter_add_(1, target.unsqueeze(1), torch.full((m, 1, b), -1.0, device=logits.device))
    return grad.div_(b)


@torch.no_grad()
def _evaluate(net: StackedMLP, X: torch.Tensor, y: torch.Tensor, loss_name: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy ``(M,)`` of every model on ``(X, y)``, in row chunks if large."""
    n = len(X)
    rows = max(1, _EVAL_ELEMENTS // max(1, net.m * max(net.sizes)))
    if rows >= n:
        # Through the training forward's reused scratch tensors: fresh multi-MB outputs every
        # epoch cost page faults that made validating 20 rows dearer than a 32-row training step.
        logits = net.forward(X, ForwardCache([], []))
        loss, _, correct = _loss_grad_correct(logits, y, loss_name)
        return loss.double(), correct.double()
    loss_sum = torch.zeros(net.m, dtype=torch.float64, device=X.device)
    correct_sum = torch.zeros(net.m, dtype=torch.float64, device=X.device)
    for start in range(0, n, rows):
        xb, yb = X[start:start + rows], y[start:start + rows]
        loss, _, correct = _loss_grad_correct(net.forward(xb), yb, loss_name)
        loss_sum += loss.double() * len(xb)
        correct_sum += correct.double() * len(xb)
    return loss_sum / n, correct_sum / n


# --------------------------------------------------------------------------- trainer
class _Chunk:
    """A slice of the M models trained as one stack: storage, the stack in training, its optimizer.

    ``models`` are the global indices still training; once some diverge, ``work`` is a compacted
    copy of ``stored`` without them (their final parameters stay in ``stored``).
    """

    def __init__(self, stored: StackedMLP, first: int, group: torch.Tensor, opt: FlatOptimizer) -> None:
        self.stored = stored
        self.work = stored
        self.first = first  # global index of stored model 0
        self.models = np.arange(first, first + stored.m)  # (m_active,) global indices still training
        self.group = group  # (m_active,) data-seed group of each active model
        self.opt = opt
        self.grad = torch.empty_like(stored.flat)  # (P,) gradient buffer laid out like work.flat
        # the fused kernel's copy of the optimizer state, in its block layout (None: opt.state is current)
        self.blocks: dict[str, torch.Tensor] | None = None
        self.spec: tuple[Any, Any] | None = None  # the fused kernel's spec (and the arrays it points to)

    def freeze(self, keep: np.ndarray) -> None:
        """Keep training only ``self.models[keep]``; the others stay as they are now in ``stored``."""
        self.write_back()
        if self.blocks is not None:  # the fused kernel's state back into the optimizer, then compacted
            for key, blocks in self.blocks.items():
                self.opt.state[key] = fused_path.from_blocks(blocks, self.work.sizes, self.work.m)
            self.blocks = None
        index = torch.as_tensor(keep, device=self.group.device)
        if len(keep):
            smaller = self.work.select(index)
            for key, state in list(self.opt.state.items()):
                self.opt.state[key] = self.work.select_flat(state, index)
            self.opt.resize(smaller.flat.numel())
            self.work, self.grad = smaller, torch.empty_like(smaller.flat)
        self.models, self.group = self.models[keep], self.group.index_select(0, index)

    def write_back(self) -> None:
        """Copy the compacted stack's parameters into their slots of ``stored``."""
        if self.work is self.stored or len(self.models) == 0:
            return
        index = torch.as_tensor(self.models - self.first, device=self.group.device)
        with torch.no_grad():
            for dst, src in zip(self.stored.weights + self.stored.biases, self.work.weights + self.work.biases, strict=False):
                dst.index_copy_(0, index, src)


class BatchedTrainer:
    """Train M MLPs of the same ``sizes`` and ``activation``, each with its own init and seeds.

    Model ``i`` is ``MLP(sizes, activation, output)`` initialized by
    ``apply_init(model, inits[i], bias_inits[i], generator=init_seeds[i])`` and trained as
    ``Trainer(model, ..., seed=order_seeds[i])`` would, number for number (to float rounding) in the
    ordered phase (chi_1 < 1); from the critical line on, rounding differences grow as they do
    between two single runs, and the two agree in distribution only.
    After ``fit``: ``history_[key]`` is an array ``(M, epochs_run)`` (NaN after a model
    stopped); ``diverged_epoch_`` ``(M,)`` holds the epoch a model's loss turned non-finite, or
    -1: such a model is frozen there and the others are unaffected. Callbacks get
    ``on_train_begin(trainer)`` and ``on_epoch_end(trainer, epoch, logs)`` with each log an
    array ``(M,)`` (a frozen model repeats its last values) and may set
    ``trainer.stop_training = True``. ``init_data`` is needed by data-dependent inits (``lsuv``).

    ``chunk_size`` models are stepped together (default: as many as keep one hidden activation
    tensor near ``2**21`` elements, bounding the scratch memory of a step); chunks share
    each minibatch and never change the numbers.

    Extensions for the re-run papers: ``loss="mse"`` trains on squared error (Keras' ``"mse"``;
    targets ``y`` float ``(N, K)``, use ``output="linear"``; accuracy is NaN), ``bias=False`` keeps
    every bias at zero (bias-free layers), ``residual=True`` trains ``MLP(..., residual=True)``
    networks, ``batch_size=None`` is full-batch gradient descent
    (one step per epoch on all rows), and ``learning_rate`` may be one value per model (SGD).

    ``fused``: on the CPU, covered stacks (see :mod:`initlab.training.fused`) train through a
    compiled C kernel, one call per epoch (several times faster; the same formulas, equal to
    float rounding); ``None`` takes it when it is there and estimated faster (not for a few wide
    nets: :func:`~initlab.training.fused.worth_it`), ``False`` keeps the torch path, ``True``
    insists (an error says why it cannot). After ``fit``, ``path_`` says which ran.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str,
        inits: Sequence[Spec],
        init_seeds: Sequence[int] | int = 0,
        bias_inits: Sequence[Spec] | Spec = "zeros",
        order_seeds: Sequence[int] | int = 0,
        optimizer: str = "adam",
        learning_rate: float | Sequence[float] | None = None,
        momentum: float = 0.0,
        epochs: int = 100,
        batch_size: int | None = 32,
        output: str = "sigmoid",
        callbacks: Sequence[Any] = (),
        device: str | torch.device = "cpu",
        init_data: Any = None,
        chunk_size: int | None = None,
        loss: str = "auto",
        bias: bool = True,
        residual: bool = False,
        fused: bool | None = None,
    ) -> None:
        self.sizes = list(sizes)
        self.activation = activation
        self.inits = [inits] if isinstance(inits, (str, Mapping)) else list(inits)
        self.m = len(self.inits)
        if self.m == 0:
            raise ValidationError("inits needs at least one entry (one per model)")
        self.init_seeds = _per_model(init_seeds, self.m, "init_seeds")
        self.bias_inits = _per_model(bias_inits, self.m, "bias_inits")
        self.order_seeds = _per_model(order_seeds, self.m, "order_seeds")
        self.optimizer = check_choice("optimizer", str(optimizer).lower(), OPTIMIZERS)
        self.learning_rate: float | list[float] | None = None
        if learning_rate is None or isinstance(learning_rate, (int, float)):
            self.learning_rate = learning_rate
        else:
            # one learning rate per model (SGD only): a learning-rate grid trains in one stack
            self.learning_rate = [check_float(f"learning_rate[{i}]", v, 0.0, strict_minimum=True)
                                  for i, v in enumerate(_per_model(learning_rate, self.m, "learning_rate"))]
            if self.optimizer != "sgd":
                raise ValidationError(f"one learning rate per model needs optimizer 'sgd', got {self.optimizer!r}")
        self.momentum = momentum
        self.epochs = check_int("epochs", epochs, 1)
        self.batch_size = None if batch_size is None else check_int("batch_size", batch_size, 1)
        self.loss = check_choice("loss", loss, LOSSES)
        self.bias = bool(bias)
        if fused not in (None, True, False):
            raise ValidationError(f"fused must be None (automatic), True or False, got {fused!r}")
        self.fused = fused
        self.residual = bool(residual)  # as MLP(..., residual=True): equal-width hidden layers add their input
        self.output = output
        self.callbacks = list(callbacks)
        self.device = torch.device(device)
        self.stop_training = False
        if chunk_size is None:  # as many as fit the element budget, then balanced across chunks
            chunk_size = max(64, _CHUNK_ELEMENTS // (max(self.sizes[1:]) * min(self.batch_size or 256, 256)))
            chunk_size = math.ceil(self.m / math.ceil(self.m / chunk_size))
        self.chunk_size = check_int("chunk_size", chunk_size, 1)
        self.stacks_ = [
            StackedMLP.initialized(
                self.sizes, activation, self.inits[a:a + self.chunk_size], self.init_seeds[a:a + self.chunk_size],
                self.bias_inits[a:a + self.chunk_size], output, self.device, init_data, self.bias,
                self.residual,
            )
            for a in range(0, self.m, self.chunk_size)
        ]

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> BatchedTrainer:
        """Train all M models on the same data, epoch by epoch in lock step."""
        start_time = time.perf_counter()
        dev = self.device
        X, y = self._tensors(X, y)
        if len(X) == 0:
            raise ValidationError("no training rows")
        if X.shape[1] != self.sizes[0]:
            raise ValidationError(f"X has {X.shape[1]} features, the models expect {self.sizes[0]}")
        has_val = X_val is not None and len(X_val) > 0
        if has_val:
            X_val, y_val = self._tensors(X_val, y_val)

        # Minibatch order: one row of orders per distinct order seed (the models of a group share it).
        seeds = list(dict.fromkeys(self.order_seeds))  # distinct, in first-seen order
        position = {s: g for g, s in enumerate(seeds)}
        group = torch.tensor([position[s] for s in self.order_seeds], device=dev)  # (M,)
        chunks, first = [], 0
        for stack in self.stacks_:
            if isinstance(self.learning_rate, list):
                opt = make_flat_optimizer(self.optimizer, stack.flat.numel(), 1.0, self.momentum, dev)
                opt.state["lr"] = stack.per_model_flat(torch.tensor(self.learning_rate[first:first + stack.m], device=dev))
            else:
                opt = make_flat_optimizer(self.optimizer, stack.flat.numel(), self.learning_rate, self.momentum, dev)
            chunks.append(_Chunk(stack, first, group[first:first + stack.m], opt))
            first += stack.m
        n = len(X)
        batch_size = n if self.batch_size is None else self.batch_size
        kernel = self._fused_kernel(n, batch_size)
        self.path_ = "torch" if kernel is None else "fused"
        threads = torch.get_num_threads()
        # the kernel's blocks split between threads (ctypes releases the GIL)
        with ThreadPoolExecutor(threads) if kernel is not None and threads > 1 else nullcontext() as pool:
            self._epochs(chunks, kernel, pool, threads, (X, y, X_val, y_val) if has_val else (X, y, None, None), seeds,
                         batch_size)
        self.fit_time_ = time.perf_counter() - start_time
        return self

    def _epochs(self, chunks: list[_Chunk], kernel: fused_path.FusedKernel | None, pool: ThreadPoolExecutor | None,
                threads: int, data: tuple[Any, ...], seeds: list[int], batch_size: int) -> None:
        """The epoch loop of :meth:`fit` (torch path, or the fused kernel when ``kernel`` is given) on
        ``data`` ``(X, y, X_val, y_val)``; sets ``history_``, ``diverged_epoch_`` and ``epochs_run_``."""
        X, y, X_val, y_val = data
        m, n, dev, has_val = self.m, len(X), self.device, X_val is not None
        shared = len(seeds) == 1
        keys = ["loss", "accuracy"] + (["val_loss", "val_accuracy"] if has_val else [])
        history = {k: np.full((self.epochs, m), np.nan) for k in keys}  # epoch-major: a row per epoch
        last = {k: np.full(m, np.nan) for k in keys}
        diverged = np.full(m, -1, dtype=np.int64)
        self.stop_training = False
        for cb in self.callbacks:
            if hasattr(cb, "on_train_begin"):
                cb.on_train_begin(self)
        epochs_run = 0
        n_steps = math.ceil(n / batch_size)
        sizes = torch.tensor([min(batch_size, n - a) for a in range(0, n, batch_size)],
                             dtype=torch.float32, device=dev).unsqueeze(1)  # (S, 1) rows per step
        weight = sizes.double()
        ahead = max(1, (1 << 20) // (len(seeds) * n))  # epochs whose orders are computed together (<= 8 MB)
        for epoch in range(self.epochs):
            if epoch % ahead == 0:
                upcoming = minibatch_orders(seeds, range(epoch, min(self.epochs, epoch + ahead)), n)  # (E, G, n)
            orders = upcoming[epoch % ahead]  # (G, n)
            perms = torch.from_numpy(orders).to(dev)
            live = [c for c in chunks if len(c.models)]
            # Per step and model: mean loss and correct count; summed in float64 at the epoch's
            # end, as Trainer sums float(loss) * len(batch) and float32 accuracy * len(batch).
            if kernel is not None:  # the kernel sums them itself
                epoch_logs = [self._fused_epoch(kernel, chunk, X, y, orders, batch_size, n_steps, threads, pool)
                              for chunk in live]
            else:
                epoch_logs = self._torch_epoch(live, shared, perms, X, y, n, batch_size, n_steps, sizes, weight)
            for chunk, (epoch_loss, epoch_acc) in zip(live, epoch_logs, strict=True):
                logs = {"loss": epoch_loss, "accuracy": epoch_acc}
                if has_val and kernel is not None:
                    spec, _sizes = self._fused_spec(chunk)
                    val_loss, val_acc = kernel.evaluate(spec, chunk.work.flat, X_val, y_val, threads, pool)
                    logs["val_loss"], logs["val_accuracy"] = val_loss.double(), val_acc.double()
                elif has_val:
                    logs["val_loss"], logs["val_accuracy"] = _evaluate(chunk.work, X_val, y_val, self.loss)
                models = chunk.models  # a slice while the chunk's models are contiguous (cheaper writes)
                rows = slice(models[0], models[-1] + 1) if models[-1] - models[0] + 1 == len(models) else models
                for k, t in logs.items():
                    v = t.cpu().numpy()
                    history[k][epoch, rows] = v
                    last[k][rows] = v
                bad = ~np.isfinite(last["loss"][rows])
                if bad.any():
                    diverged[chunk.models[bad]] = epoch
                    chunk.freeze(np.flatnonzero(~bad))
            epochs_run = epoch + 1
            for cb in self.callbacks:
                if hasattr(cb, "on_epoch_end"):
                    cb.on_epoch_end(self, epoch, {k: v.copy() for k, v in last.items()})
            if self.stop_training or not any(len(c.models) for c in chunks):
                break
        for chunk in chunks:
            chunk.write_back()
        self.history_ = {k: v[:epochs_run].T for k, v in history.items()}  # (M, epochs_run), a transposed view
        self.diverged_epoch_ = diverged
        self.epochs_run_ = epochs_run

    def _torch_epoch(self, live: list[_Chunk], shared: bool, perms: torch.Tensor, X: torch.Tensor, y: torch.Tensor,
                     n: int, batch_size: int, n_steps: int, sizes: torch.Tensor, weight: torch.Tensor
                     ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of every live chunk through torch ops: each chunk's epoch loss and accuracy ``(m,)``."""
        dev = self.device
        steps = [(torch.empty(n_steps, len(c.models), device=dev), torch.empty(n_steps, len(c.models), device=dev))
                 for c in live]
        for s, start in enumerate(range(0, n, batch_size)):
            if shared:  # common random numbers: one minibatch for every model
                idx = perms[0, start:start + batch_size]  # (B,)
                xb, yb = X[idx], y[idx]  # (B, in), (B,)
            for chunk, (step_loss, step_count) in zip(live, steps, strict=False):
                if not shared:  # each model its own order: gathered per model
                    idx = perms[chunk.group, start:start + batch_size]  # (m, B)
                    xb, yb = X[idx], y[idx]  # (m, B, in), (m, B)
                cache = ForwardCache([], [])
                logits = chunk.work.forward(xb, cache)  # (m, K, B)
                grad_logits = _train_loss_grad(logits, yb, step_loss[s], step_count[s], self.loss)
                chunk.work.backward(cache, logits, grad_logits, chunk.grad)
                chunk.opt.step(chunk.work.flat, chunk.grad)
        return [((step_loss.double() * weight).sum(0) / n, ((step_count / sizes).double() * weight).sum(0) / n)
                for step_loss, step_count in steps]

    # ------------------------------------------------------------------ fused path
    def _fused_kernel(self, rows: int, batch: int) -> fused_path.FusedKernel | None:
        """The fused kernel if this fit takes it (see the class docstring's ``fused``)."""
        if self.fused is False:
            return None
        if self.fused is None and not fused_path.worth_it(self.sizes, min(self.m, self.chunk_size), rows, batch):
            return None  # a few wide nets: the torch path's batched matmuls are faster
        activation = self.stacks_[0].activation
        reason = fused_path.unsupported_reason(self.sizes, activation, self.optimizer, self.device)
        found = None if reason else fused_path.kernel()
        if self.fused and found is None:
            why = reason or "the kernel is not available (INITLAB_FUSED=0, or no C compiler: see the warning)"
            raise ValidationError(f"fused=True cannot train this stack: {why}")
        return found

    def _fused_spec(self, chunk: _Chunk) -> tuple[Any, Any]:
        """The kernel's spec for the chunk's stack in training (made again after a freeze compacts it)."""
        if chunk.spec is None or chunk.spec[0].m != chunk.work.m:
            chunk.spec = fused_path.make_spec(self.sizes, chunk.work.m, chunk.work.activation, self.loss, self.bias,
                                              self.optimizer, chunk.opt, self.residual)
        return chunk.spec

    def _fused_epoch(self, kernel: fused_path.FusedKernel, chunk: _Chunk, X: torch.Tensor, y: torch.Tensor,
                     orders: np.ndarray, batch_size: int, n_steps: int, threads: int, pool: ThreadPoolExecutor | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """One epoch of ``chunk`` through the fused kernel (the optimizer's state updated in place):
        the epoch's loss and accuracy ``(m,)``."""
        opt, flat = chunk.opt, chunk.work.flat
        spec, _sizes = self._fused_spec(chunk)  # _sizes: the array spec points to, alive for the call
        if chunk.blocks is None:  # the optimizer's state in the kernel's block layout, for the chunk's life
            if isinstance(opt, FlatSGD) and opt.momentum:
                opt.state.setdefault("momentum_buffer", torch.zeros_like(flat))
            chunk.blocks = {k: fused_path.to_blocks(v, self.sizes, chunk.work.m) for k, v in opt.state.items()}
        blocks = chunk.blocks
        lr_steps = None
        state1: torch.Tensor | None
        if isinstance(opt, FlatAdam):
            state1, state2 = blocks["exp_avg"], blocks["exp_avg_sq"]
            lr_steps = fused_path.adam_steps(opt, n_steps)
        elif isinstance(opt, FlatSGD):
            state1, state2 = blocks.get("momentum_buffer"), None
        else:
            state1, state2 = blocks["square_avg"], blocks.get("momentum_buffer")
        group = chunk.group.cpu().numpy().astype(np.int64, copy=False)
        logs = kernel.train_epoch(spec, flat, state1, state2, blocks.get("lr"), X, y, orders, group, batch_size, lr_steps,
                                  threads, pool)
        opt.steps += n_steps
        return logs

    def _tensors(self, X: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``X`` float32 ``(N, in)``; ``y`` as the loss reads it: float ``(N,)`` for one sigmoid
        output, class indices ``(N,)`` for several, float ``(N, K)`` for ``loss="mse"``."""
        n_out = self.sizes[-1]
        if self.loss == "mse":
            X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
            y = torch.as_tensor(np.asarray(y), dtype=torch.float32).reshape(len(X), n_out)
            return X.to(self.device), y.to(self.device)
        X, y = (t.to(self.device) for t in as_tensors(X, y, n_out))
        return X, (y.reshape(-1) if n_out == 1 else y)

    # ------------------------------------------------------------------ results
    def _locate(self, i: int) -> tuple[StackedMLP, int]:
        i = check_int("model index", i, 0, self.m - 1)
        return self.stacks_[i // self.chunk_size], i % self.chunk_size

    def to_model(self, i: int) -> MLP:
        """Network ``i`` as an ordinary ``MLP`` (a copy)."""
        stack, j = self._locate(i)
        return stack.to_model(j)

    def to_models(self) -> list[MLP]:
        """The M trained networks as ordinary ``MLP`` modules (copies)."""
        return [model for stack in self.stacks_ for model in stack.to_models()]

    @torch.no_grad()
    def hidden(self, X: Any) -> list[torch.Tensor]:
        """Every hidden layer's activations of every model on ``X``: one ``(M, units, N)`` tensor per layer."""
        X = torch.as_tensor(np.asarray(X), dtype=torch.float32, device=self.device)
        layers = [stack.hidden(X) for stack in self.stacks_]  # chunks x layers
        return [torch.cat(parts) for parts in zip(*layers, strict=False)]

    def weights(self) -> list[torch.Tensor]:
        """Every layer's weights of every model, one ``(M, out, in)`` tensor per layer (copies)."""
        return [torch.cat([stack.weights[l].detach() for stack in self.stacks_]) for l in range(len(self.sizes) - 1)]

    def evaluate(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Loss and accuracy ``(M,)`` of every model on ``(X, y)`` (as ``Trainer.evaluate``, per model)."""
        X, y = self._tensors(X, y)
        parts = [_evaluate(stack, X, y, self.loss) for stack in self.stacks_]
        return (torch.cat([p[0] for p in parts]).cpu().numpy(), torch.cat([p[1] for p in parts]).cpu().numpy())

    @torch.no_grad()
    def predict_proba(self, X: Any) -> np.ndarray:
        """``(M, N)`` P(class 1) for sigmoid outputs, ``(M, N, K)`` for softmax, logits for linear."""
        X = torch.as_tensor(np.asarray(X), dtype=torch.float32, device=self.device)
        logits = torch.cat([s.forward(X) for s in self.stacks_]).transpose(1, 2)  # (M, N, K)
        if self.output == "sigmoid":
            return torch.sigmoid(logits).squeeze(-1).cpu().numpy()
        if self.output == "softmax":
            return torch.softmax(logits, dim=-1).cpu().numpy()
        return logits.cpu().numpy()

    def __repr__(self) -> str:
        return f"BatchedTrainer(m={self.m}, sizes={self.sizes}, activation={self.activation!r}, optimizer={self.optimizer!r})"
