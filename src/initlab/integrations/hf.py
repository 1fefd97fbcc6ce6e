"""``MonitorCallback``: :class:`initlab.Monitor` inside a Hugging Face ``transformers.Trainer``.

    from initlab.integrations.hf import MonitorCallback

    trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                   callbacks=[MonitorCallback("runs/monitor", every=50)])
    trainer.train()  # then runs/monitor/: monitor.json, monitor_heatmap.png, monitor_histograms.png

The monitor is attached to the model the Trainer passes at ``on_train_begin``, counts optimizer
steps (``state.global_step``), records steps 1, every + 1, ... and writes its files at
``on_train_end`` (on the main process). A recorded step is read at ``on_optimizer_step``, right
after ``optimizer.step()`` and before the Trainer zeroes the gradients (at ``on_step_end`` they
are already gone); the gradient norms are those the optimizer received, after the Trainer's
clipping (``max_grad_norm``, 1.0 by default).

transformers is optional: accessing ``MonitorCallback`` without it raises one line naming
``pip install 'initlab[hf]'``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .._validation import InitlabError, check_int
from ._monitor_files import import_extra, lazy_callback, write_monitor

__all__ = ["MonitorCallback"]  # noqa: F822  (built on first use by __getattr__: the framework loads then)


def _build() -> type:
    transformers = import_extra("transformers", "transformers", "hf")
    from ..diagnostics.monitor import Monitor

    class MonitorCallback(transformers.TrainerCallback):  # type: ignore[name-defined,misc]  # base from an optional package imported at run time
        """Record :class:`initlab.Monitor` statistics during ``Trainer.train`` and write them at the end
        (see :mod:`initlab.integrations.hf`)."""

        def __init__(self, out: str | Path = "initlab-out/monitor", every: int = 10, histograms: bool = True,
                     sample_size: int = 2048) -> None:
            self.out = Path(out)
            self.every = check_int("every", every, 1)
            self.sample_size = check_int("sample_size", sample_size, 1)
            self.histograms = histograms
            self.monitor: Monitor | None = None
            self.paths: dict[str, Path] = {}  # what was written at the end
            self._title = "training"

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            if model is None:
                raise InitlabError("MonitorCallback needs the model: the Trainer passed none to on_train_begin")
            self._title = type(model).__name__
            self.monitor = Monitor(model, every=self.every, histograms=self.histograms, sample_size=self.sample_size)
            self.monitor.on_train_begin(SimpleNamespace(step_=int(state.global_step)))

        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.monitor is not None:  # global_step is incremented after this event
                self.monitor.on_step_end(None, int(state.global_step) + 1)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.monitor is None:
                return
            self.monitor.close()
            if state.is_world_process_zero:
                self.paths = write_monitor(self.monitor, self.out, self._title)

    return MonitorCallback


__getattr__ = lazy_callback(globals(), _build)
