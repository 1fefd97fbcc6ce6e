"""``Monitor``: diagnose's per-layer statistics, recorded during training at low cost.

As a callback of :class:`initlab.training.Trainer`::

    monitor = initlab.Monitor(model, every=10)
    Trainer(model, callbacks=[monitor]).fit(X, y)
    figures.heatmap_figure(monitor)

In your own loop, call ``monitor.step()`` once per optimizer step, after ``optimizer.step()``
(and before the next ``zero_grad``), and ``monitor.close()`` at the end (or use ``with``)::

    with initlab.Monitor(model, every=10) as monitor:
        for xb, yb in batches:
            opt.zero_grad(); loss_fn(model(xb), yb).backward(); opt.step()
            monitor.step()

Steps are counted from 1. Steps 1, every + 1, 2 * every + 1, ... are recorded (step 1 is the
initialization). The hooks are attached only for a recording step's forward and backward
pass and removed right after, so the other steps run the model untouched. Per recorded step
and layer: activation mean and std, pre-activation std, dead and saturated fractions, weight
and output gradient norms (as ``diagnose`` measures them) and the update/weight ratio
``||W_after - W_before|| / ||W_before||`` of that step. Histograms (activation values and
back-propagated gradients, at most ``sample_size`` values per layer) are kept at the recorded
steps number 0, 1, 2, 4, 8, ... (geometric in time: the early steps change most). Symmetry
(``distinct_units``, which compares every pair of units) is left to ``diagnose``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import ValidationError, check_choice, check_int
from .recorder import Recorder
from .rows import layer_stats, row_samples

__all__ = ["Monitor", "STATS"]

# the statistics kept per layer and recorded step (LayerStats fields plus the update ratio)
STATS = ("mean", "std", "pre_std", "dead_fraction", "saturated_fraction", "grad_norm", "output_grad_norm",
         "weight_std", "update_ratio")


class Monitor:
    """Record per-layer statistics every ``every`` steps of training (see the module docstring)."""

    def __init__(self, model: nn.Module, every: int = 10, histograms: bool = True, sample_size: int = 2048) -> None:
        if not isinstance(model, nn.Module):
            raise ValidationError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if any(c.__module__.split(".")[0] == "keras" for c in type(model).__mro__):
            raise ValidationError("a Keras model: use initlab.keras.Monitor(every=N) in model.fit(callbacks=[...])")
        self.model = model
        self.every = check_int("every", every, 1)
        self.histograms = histograms
        self.sample_size = check_int("sample_size", sample_size, 1)
        self.records: list[dict[str, Any]] = []  # {"step": s, "layers": {name: {stat: value}}}
        self.snapshots: list[dict[str, Any]] = []  # {"step": s, "layers": {name: {"activation", "gradient"}}}
        self.layer_info: dict[str, dict[str, Any]] = {}  # name -> {"kind", "units", "activation", "weighted"}
        self._recorder = Recorder(model, functional=True, keep_grads=True)
        self._before: dict[int, torch.Tensor] = {}
        self._steps = 0
        self._arm()

    # -- Trainer callback -------------------------------------------------------------------
    def on_train_begin(self, trainer: Any = None) -> None:
        """Start counting at the trainer's step and record the next (first) step."""
        self._steps = int(getattr(trainer, "step_", 0) or 0)
        self._arm()

    def on_step_end(self, trainer: Any, step: int) -> None:
        self._steps = int(step)
        self._after_step(self._steps)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        """After the trainer's last epoch, remove any hooks still attached."""
        if epoch + 1 >= int(getattr(trainer, "epochs", epoch + 2)) or getattr(trainer, "stop_training", False):
            self.close()

    # -- own loop ---------------------------------------------------------------------------
    def step(self) -> None:
        """Call once per optimizer step, after ``optimizer.step()``."""
        self._steps += 1
        self._after_step(self._steps)

    def close(self) -> None:
        """Remove any hooks still attached."""
        if self._recorder is not None:
            self._recorder.detach()
        self._before = {}

    def __getstate__(self) -> dict[str, Any]:
        """A pickled Monitor keeps its records and histograms, not the model or its hooks."""
        state = dict(self.__dict__)
        state.update(model=None, _recorder=None, _before={})
        return state

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- recording --------------------------------------------------------------------------
    def _arm(self) -> None:
        if not self._recorder.attached:
            self._recorder.attach()
            self._before = {id(p): p.detach().clone() for p in self.model.parameters()}

    def _after_step(self, step: int) -> None:
        if self._recorder.attached and self._recorder.done:
            self._collect(step)
            self._recorder.detach()
            self._before = {}
        if step % self.every == 0:
            self._arm()  # record the next step's forward and backward

    def _collect(self, step: int) -> None:
        recorder = self._recorder
        layers: dict[str, dict[str, float]] = {}
        samples: dict[str, dict[str, np.ndarray]] = {}
        keep_samples = self.histograms and _is_geometric(len(self.records))
        with torch.no_grad():
            for i, rec in enumerate(recorder.records):
                out_grad = recorder.grads.get(i)
                weight_grad = [w.grad for w in rec.weights] if rec.weighted else None
                stats = layer_stats(rec, weight_grad, out_grad, symmetry=False)
                row = {key: getattr(stats, key) for key in STATS if key != "update_ratio"}
                row["update_ratio"] = self._update_ratio(rec.weights[0] if rec.weighted else None)
                layers[rec.name] = row
                self.layer_info.setdefault(rec.name, {"kind": stats.kind, "units": stats.units,
                                                      "activation": stats.activation, "weighted": stats.weighted})
                if keep_samples:
                    samples[rec.name] = row_samples(rec, out_grad, self.sample_size)
        self.records.append({"step": step, "layers": layers})
        if keep_samples:
            self.snapshots.append({"step": step, "layers": samples})

    def _update_ratio(self, weight: torch.Tensor | None) -> float:
        before = self._before.get(id(weight)) if weight is not None else None
        if before is None or weight is None:
            return 0.0
        norm = float(before.norm())
        return float((weight.detach() - before).norm()) / norm if norm > 0 else 0.0

    # -- reading ----------------------------------------------------------------------------
    @property
    def steps(self) -> list[int]:
        """The recorded steps (1 is the initialization)."""
        return [r["step"] for r in self.records]

    @property
    def steps_seen(self) -> int:
        """How many training steps this monitor has counted (recorded or not)."""
        return self._steps

    @property
    def layer_names(self) -> list[str]:
        """Every layer seen, in forward order of first appearance."""
        return list(self.layer_info)

    def series(self, stat: str) -> np.ndarray:
        """``(layers, recorded steps)`` array of ``stat`` (nan where a layer was not seen)."""
        check_choice("statistic", stat, STATS)
        names = self.layer_names
        out = np.full((len(names), len(self.records)), np.nan)
        for j, rec in enumerate(self.records):
            for i, name in enumerate(names):
                if name in rec["layers"]:
                    out[i, j] = rec["layers"][name][stat]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: settings, layer info and every record (histograms left out)."""
        return {"every": self.every, "steps": self.steps, "layers": self.layer_info, "records": self.records}


def _is_geometric(index: int) -> bool:
    """True for recorded-step numbers 0, 1, 2, 4, 8, 16, ..."""
    return index == 0 or (index & (index - 1)) == 0
