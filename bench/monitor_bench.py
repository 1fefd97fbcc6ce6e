"""Monitor overhead per training step: a 784-256x4-10 ReLU MLP, batch 128, Adam.

Prints the time per step without a monitor and with ``Monitor(every=N)`` as a ratio
(aim: under 1.15x at every=10). Run: ``python bench/monitor_bench.py``. Not a test.
"""

from __future__ import annotations

import time

import torch

from initlab import apply_init
from initlab.diagnostics import Monitor
from initlab.models import MLP
from initlab.training import Trainer

N_ROWS, BATCH, EPOCHS, REPEATS, ROUNDS = 128 * 50, 128, 2, 2, 3


def make_model() -> MLP:
    model = MLP([784, 256, 256, 256, 256, 10], "relu", output="softmax")
    return apply_init(model, "he_normal", generator=0)


def time_per_step(every: int | None, X: torch.Tensor, y: torch.Tensor) -> float:
    """Best of REPEATS: seconds per step of Trainer.fit (with a monitor when ``every`` is set)."""
    best = float("inf")
    for _ in range(REPEATS):
        model = make_model()
        callbacks = [Monitor(model, every=every)] if every else []
        trainer = Trainer(model, epochs=EPOCHS, batch_size=BATCH, callbacks=callbacks, seed=0)
        start = time.perf_counter()
        trainer.fit(X, y)
        best = min(best, (time.perf_counter() - start) / trainer.step_)
    return best


def main() -> None:
    torch.set_num_threads(1)  # one thread: steadier timings on a shared machine
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(N_ROWS, 784, generator=gen)
    y = torch.randint(0, 10, (N_ROWS,), generator=gen)
    settings = (None, 100, 10, 1)
    best = {every: float("inf") for every in settings}
    time_per_step(None, X, y)  # warm up
    for _ in range(ROUNDS):  # interleaved, so a busy moment hits every setting alike
        for every in settings:
            best[every] = min(best[every], time_per_step(every, X, y))
    base = best[None]
    print(f"784-256x4-10 MLP, batch {BATCH}, {N_ROWS // BATCH * EPOCHS} steps, best of {ROUNDS * REPEATS}")
    print(f"  no monitor       : {base * 1e3:7.3f} ms/step")
    for every in settings[1:]:
        print(f"  Monitor(every={every:<3}): {best[every] * 1e3:7.3f} ms/step  ratio {best[every] / base:.3f}x")


if __name__ == "__main__":
    main()
