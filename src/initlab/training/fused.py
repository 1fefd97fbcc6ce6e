"""The batched trainer's fused CPU path: one C call per epoch and chunk instead of ~30 torch calls per step.

:class:`~initlab.training.BatchedTrainer` spends a small net's step in kernel launches and
passes over main memory (forward, loss, backward and Adam each stream the whole stack). The
kernel in ``fused_kernel.c`` instead takes 16 nets at a time (one SIMD lane each, net axis
innermost), keeps their parameters, optimizer state and activations in the cache for the whole
epoch, and runs forward, loss, backward and the optimizer step fused per layer. It computes the
torch path's formulas (to float rounding: sums in another order, Cephes exp/log/tanh), and
a net's numbers do not depend on the chunking or the thread count.

The kernel is compiled on first use with the machine's C compiler (``$CC``, else ``cc``;
``-O3 -march=native``) into ``$INITLAB_CACHE_DIR`` (default ``~/.cache/initlab``), keyed by the
source, the flags and the CPU. Without a compiler, or with ``INITLAB_FUSED=0``, the trainer
takes its torch path and says why once (a warning). Covered: every hidden activation of the
stacked model (relu, leaky_relu, tanh, sigmoid, linear, elu, selu, silu, gelu; gelu's normal CDF
from Abramowitz & Stegun 7.1.26, |error| < 1.5e-7), with or without residual connections; one sigmoid/BCE
output, softmax cross-entropy over K classes, or ``loss="mse"``; Adam, SGD (with momentum and
per-model learning rates) and RMSprop; shared or per-model minibatch orders; bias-free layers;
full batch; CPU.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.mlp import residual_layers
from .optim import adam_step_size

__all__ = ["FusedKernel", "kernel", "unsupported_reason", "ACTIVATIONS"]

_SOURCE = Path(__file__).with_name("fused_kernel.c")
_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared")
ACTIVATIONS = {"linear": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4, "elu": 5, "selu": 6, "silu": 7,
               "gelu": 8}
_OPTIMIZERS = {"adam": 0, "sgd": 1, "rmsprop": 2}
_LANES = 16  # V in the kernel: nets per block
_P = ctypes.c_void_p
_I = ctypes.c_int64


class _Spec(ctypes.Structure):
    _fields_ = [("n_layers", ctypes.c_int64), ("sizes", _P), ("m", ctypes.c_int64), ("activation", ctypes.c_int64),
                ("loss", ctypes.c_int64), ("has_bias", ctypes.c_int64), ("optimizer", ctypes.c_int64),
                ("beta1", ctypes.c_float), ("beta2", ctypes.c_float), ("eps", ctypes.c_float),
                ("momentum", ctypes.c_float), ("rho", ctypes.c_float), ("lr", ctypes.c_float), ("skips", _P)]


def _cache_dir() -> Path:
    root = os.environ.get("INITLAB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "initlab")
    return Path(root) / "kernels"


def _cpu_signature() -> str:
    """The CPU's model and feature flags (the library is built for this CPU: -march=native)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [line for line in text.splitlines() if line.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor()


def _build(cc: str) -> Path:
    """Compile the kernel (once per source, flags and CPU) and return the library's path."""
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join((cc, *_FLAGS)).encode() + _cpu_signature().encode()).hexdigest()[:16]
    target = _cache_dir() / f"fused_{platform.machine()}_{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        proc = subprocess.run([cc, *_FLAGS, str(_SOURCE), "-o", str(out), "-lm"], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
        os.replace(out, target)  # atomic: a concurrent build of the same key writes the same bytes
    return target


class FusedKernel:
    """The compiled kernel: :meth:`train_epoch` and :meth:`evaluate` on a stack's flat buffers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lib = ctypes.CDLL(str(path))
        self._train = lib.initlab_train_epoch
        self._train.restype = ctypes.c_int
        self._train.argtypes = [ctypes.POINTER(_Spec), _P, _P, _P, _P, _P, _P, _P, _P, _I, _I, _I, _I, _P, _P, _P]
        self._eval = lib.initlab_evaluate
        self._eval.restype = ctypes.c_int
        self._eval.argtypes = [ctypes.POINTER(_Spec), _P, _P, _P, _I, _I, _I, _P, _P]

    @staticmethod
    def _ptr(t: torch.Tensor | np.ndarray | None) -> int | None:
        if t is None:
            return None
        if isinstance(t, np.ndarray):
            return int(t.ctypes.data)
        return int(t.data_ptr())

    def train_epoch(self, spec: _Spec, flat: torch.Tensor, state1: torch.Tensor | None, state2: torch.Tensor | None,
                    lrs: torch.Tensor | None, X: torch.Tensor, Y: torch.Tensor, perm: np.ndarray, group: np.ndarray,
                    batch: int, lr_steps: np.ndarray | None, threads: int = 1,
                    pool: ThreadPoolExecutor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One epoch of every net of the stack, in place: parameters in ``flat`` (the stack's layout),
        optimizer state and per-model learning rates in the block layout (:func:`to_blocks`). Returns
        the epoch's loss and accuracy ``(m,)`` (float64): the steps' means weighted by their rows, as
        the torch path computes them."""
        X, Y = X.contiguous(), Y.to(torch.float32).contiguous()  # rows read densely; class indices as floats
        loss, acc = torch.empty(spec.m, dtype=torch.float64), torch.empty(spec.m, dtype=torch.float64)
        args = (self._ptr(flat), self._ptr(state1), self._ptr(state2), self._ptr(lrs), self._ptr(X), self._ptr(Y),
                self._ptr(perm), self._ptr(group), X.shape[0], batch)
        tail = (self._ptr(lr_steps), self._ptr(loss), self._ptr(acc))

        def run(first: int, count: int) -> None:
            if self._train(ctypes.byref(spec), *args, first, count, *tail) != 0:
                raise MemoryError("the fused kernel could not allocate its block buffers")

        self._split(run, spec.m, threads, pool)
        return loss, acc

    def evaluate(self, spec: _Spec, flat: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, threads: int = 1,
                 pool: ThreadPoolExecutor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss and accuracy ``(m,)`` (float32) of every net on ``(X, Y)``."""
        X, Y = X.contiguous(), Y.to(torch.float32).contiguous()
        loss, acc = torch.empty(spec.m), torch.empty(spec.m)

        def run(first: int, count: int) -> None:
            if self._eval(ctypes.byref(spec), self._ptr(flat), self._ptr(X), self._ptr(Y), X.shape[0], first, count,
                          self._ptr(loss), self._ptr(acc)) != 0:
                raise MemoryError("the fused kernel could not allocate its block buffers")

        self._split(run, spec.m, threads, pool)
        return loss, acc

    @staticmethod
    def _split(run: Any, m: int, threads: int, pool: ThreadPoolExecutor | None) -> None:
        """Run ``run(first, count)`` over [0, m) in ``threads`` lane-aligned parts (ctypes drops the GIL)."""
        blocks = -(-m // _LANES)
        parts = max(1, min(threads, blocks))
        if parts == 1 or pool is None:
            run(0, m)
            return
        edges = [min(m, _LANES * (blocks * k // parts)) for k in range(parts + 1)]
        futures = [pool.submit(run, a, b - a) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
        for f in futures:
            f.result()


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _load() -> FusedKernel | str:
    """The kernel, or why it is not available (said once as a warning)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return "no C compiler (cc) found"
    try:
        return FusedKernel(_build(cc))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return f"compiling the fused kernel failed: {exc}"


def kernel() -> FusedKernel | None:
    """The compiled kernel, or None (``INITLAB_FUSED=0``, or no compiler: warned once)."""
    if os.environ.get("INITLAB_FUSED", "1") == "0":
        return None
    with _lock:
        found = _load()
    if isinstance(found, str):
        _warn_once(found)
        return None
    return found


@cache
def _warn_once(reason: str) -> None:
    warnings.warn(f"initlab: the batched trainer's fused CPU kernel is off ({reason}); training takes the torch path "
                  "(same numbers to float rounding, slower)", RuntimeWarning, stacklevel=3)


def unsupported_reason(sizes: list[int], activation: str, optimizer: str, device: torch.device) -> str | None:
    """Why the fused kernel cannot train this stack (None: it can)."""
    if device.type != "cpu":
        return f"device {device.type}"
    if activation not in ACTIVATIONS:
        return f"activation {activation!r}"
    if optimizer not in _OPTIMIZERS:
        return f"optimizer {optimizer!r}"
    if len(sizes) - 1 > 64:
        return "more than 64 layers"
    return None


# Seconds per multiply-add per training row (forward and both backward products), and per layer and
# step of the torch path's kernel launches; measured on a 2-core EPYC, 1 thread (bench/trainer_floor.py
# and deep 64-48x21-10 stacks of M = 1..32): the kernel's per-lane rate, the torch path's per-net rate.
_FUSED_S_PER_MAC = 1.3e-10
_TORCH_S_PER_MAC = 2.4e-10
_TORCH_S_PER_LAYER_STEP = 5e-5


def worth_it(sizes: list[int], m: int, rows: int, batch: int) -> bool:
    """Whether the kernel beats the torch path for ``m`` nets (estimated epoch times).

    The kernel computes 16 nets per block, so a few wide nets waste most lanes (M = 2 nets of width
    48 and depth 22: 2.4x slower than the torch path, whose batched matmuls do not care); the torch
    path pays ~50 us of launches per layer and step, which small nets never recover."""
    macs = sum(i * o for i, o in zip(sizes[:-1], sizes[1:], strict=True)) * rows  # per net and epoch
    lanes = _LANES * -(-m // _LANES)
    steps = -(-rows // batch)
    fused = lanes * macs * _FUSED_S_PER_MAC
    torch_path = steps * (len(sizes) - 1) * _TORCH_S_PER_LAYER_STEP + m * macs * _TORCH_S_PER_MAC
    return fused <= torch_path


def make_spec(sizes: list[int], m: int, activation: str, loss: str, bias: bool, optimizer: str, opt: Any,
              residual: bool = False) -> tuple[_Spec, tuple[np.ndarray, np.ndarray]]:
    """The kernel's spec for a stack of ``m`` nets and optimizer ``opt`` (a Flat* optimizer); and the
    arrays it points to (keep them alive while the spec is used)."""
    sizes_arr = np.asarray(sizes, dtype=np.int64)
    skips = np.asarray(residual_layers(sizes, residual), dtype=np.int64)  # per hidden layer: adds its input
    spec = _Spec(n_layers=len(sizes) - 1, sizes=int(sizes_arr.ctypes.data), m=m, activation=ACTIVATIONS[activation],
                 loss=1 if loss == "mse" else (0 if sizes[-1] == 1 else 2), has_bias=int(bias), optimizer=_OPTIMIZERS[optimizer],
                 skips=int(skips.ctypes.data) if skips.any() else None)
    if optimizer == "adam":
        spec.beta1, spec.beta2 = opt.betas
        spec.eps = opt.eps
    elif optimizer == "sgd":
        spec.momentum, spec.lr = opt.momentum, opt.lr
    else:
        spec.rho, spec.eps, spec.momentum, spec.lr = opt.alpha, opt.eps, opt.momentum, opt.lr
    return spec, (sizes_arr, skips)


def adam_steps(opt: Any, n_steps: int) -> np.ndarray:
    """Keras' step sizes lr_t of the next ``n_steps`` Adam steps, float32 ``(S,)``."""
    b1, b2 = opt.betas
    return np.array([adam_step_size(opt.lr, b1, b2, opt.steps + s + 1) for s in range(n_steps)], dtype=np.float32)


def _parts(sizes: list[int]) -> list[tuple[int, int]]:
    """(values per net, row offset in a block) of each weight and bias part, layer by layer."""
    parts, off = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        for q in (fan_out * fan_in, fan_out):
            parts.append((q, off))
            off += q
    return parts


def to_blocks(flat: torch.Tensor, sizes: list[int], m: int) -> torch.Tensor:
    """A buffer in the stack's flat layout ``(P,)`` as the kernel's block layout ``(ceil(m / 16), P / m, 16)``:
    net ``j``'s value ``k`` at ``[j // 16, k, j % 16]`` (lanes past ``m`` are zero)."""
    parts = _parts(sizes)
    per_net = sum(q for q, _ in parts)
    n_blocks = -(-m // _LANES)
    out = torch.zeros(n_blocks, per_net, _LANES, dtype=flat.dtype)
    base = 0
    for q, off in parts:
        padded = torch.zeros(n_blocks * _LANES, q, dtype=flat.dtype)
        padded[:m] = flat[base:base + m * q].view(m, q)
        out[:, off:off + q, :] = padded.view(n_blocks, _LANES, q).transpose(1, 2)
        base += m * q
    return out


def from_blocks(blocks: torch.Tensor, sizes: list[int], m: int) -> torch.Tensor:
    """The inverse of :func:`to_blocks`: the flat layout ``(P,)``."""
    pieces = []
    for q, off in _parts(sizes):
        pieces.append(blocks[:, off:off + q, :].transpose(1, 2).reshape(-1, q)[:m].reshape(-1))
    return torch.cat(pieces)
