"""``MonitorCallback``: :class:`initlab.Monitor` inside a Lightning ``Trainer``.

    from initlab.integrations.lightning import MonitorCallback

    trainer = lightning.pytorch.Trainer(max_steps=1000, callbacks=[MonitorCallback("runs/monitor", every=50)])
    trainer.fit(model, loader)  # then runs/monitor/: monitor.json, monitor_heatmap.png, monitor_histograms.png

The monitor is attached to the ``LightningModule`` when training starts (after Lightning has
moved it to its device), counts optimizer steps (``trainer.global_step``: with gradient
accumulation, one step per accumulated batch group), records steps 1, every + 1, ... and writes
its files when training ends (on the global-zero process). The recorded step's forward must go
through the LightningModule itself (``self(x)`` in ``training_step``); when ``training_step``
calls a submodule directly (``self.net(x)``), name it: ``MonitorCallback(module="net")``.
Gradient norms are those the optimizer received (after any gradient clipping).

Lightning is optional: accessing ``MonitorCallback`` without it raises one line naming
``pip install 'initlab[lightning]'``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .._validation import InitlabError, ValidationError, check_int
from ._monitor_files import import_extra, lazy_callback, write_monitor

__all__ = ["MonitorCallback"]  # noqa: F822  (built on first use by __getattr__: the framework loads then)


def _submodule(root: Any, path: str) -> Any:
    from torch import nn

    target = root
    for part in path.split("."):
        target = getattr(target, part, None)
        if target is None:
            children = [n for n, _ in root.named_children()]
            raise ValidationError(f"MonitorCallback module {path!r} not found on {type(root).__name__} "
                                  f"(children: {', '.join(children) or 'none'})")
    if not isinstance(target, nn.Module):
        raise ValidationError(f"MonitorCallback module {path!r} is a {type(target).__name__}, not a torch.nn.Module")
    return target


def _build() -> type:
    pl = import_extra("lightning.pytorch", "lightning", "lightning")
    from ..diagnostics.monitor import Monitor

    class MonitorCallback(pl.Callback):  # type: ignore[name-defined,misc]  # base from an optional package imported at run time
        """Record :class:`initlab.Monitor` statistics during ``Trainer.fit`` and write them at the end
        (see :mod:`initlab.integrations.lightning`)."""

        def __init__(self, out: str | Path = "initlab-out/monitor", every: int = 10, module: str | None = None,
                     histograms: bool = True, sample_size: int = 2048) -> None:
            super().__init__()
            self.out = Path(out)
            self.every = check_int("every", every, 1)
            self.sample_size = check_int("sample_size", sample_size, 1)
            self.module = module
            self.histograms = histograms
            self.monitor: Monitor | None = None
            self.paths: dict[str, Path] = {}  # what was written at the end
            self._last_step = 0

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            target = pl_module if self.module is None else _submodule(pl_module, self.module)
            self.monitor = Monitor(target, every=self.every, histograms=self.histograms, sample_size=self.sample_size)
            self._last_step = int(trainer.global_step)
            self.monitor.on_train_begin(SimpleNamespace(step_=self._last_step))

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            step = int(trainer.global_step)
            if self.monitor is None or step == self._last_step:  # accumulating gradients: no optimizer step yet
                return
            first = not self.monitor.records
            self._last_step = step
            self.monitor.on_step_end(trainer, step)
            if first and not self.monitor.records:
                what = type(pl_module).__name__ if self.module is None else f"{type(pl_module).__name__}.{self.module}"
                self.monitor.close()
                raise InitlabError(
                    f"MonitorCallback recorded nothing in the first step: {what}'s forward was not called with gradients "
                    f"on, or it has no Linear/Conv layer; call self(x) in training_step, or pass "
                    f"MonitorCallback(module=...) naming the submodule training_step calls")

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            if self.monitor is None:
                return
            self.monitor.close()
            if trainer.is_global_zero:
                self.paths = write_monitor(self.monitor, self.out, type(pl_module).__name__)

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            if self.monitor is not None:
                self.monitor.close()

    return MonitorCallback


__getattr__ = lazy_callback(globals(), _build)
