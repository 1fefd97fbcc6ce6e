"""``initlab.transfer``: train every (parametrization, width, depth, lr, seed) and measure the drift of the best lr.

The grid: the width axis at the first depth, and, when several depths are given, the depth axis
at the first (smallest) width. Every cell is a network trained with Adam for ``steps`` steps
from its seed's initialization; its loss is the mean cross-entropy on the training split after
the budget (the y-axis of Tensor Programs V, figure 1). See :mod:`.analysis` for the best lr,
the drift and the verdict, :mod:`.parametrizations` for the rules and their papers.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import nn

from .._rng import make_generator
from .._validation import ValidationError, check_choice, check_int
from . import analysis
from .engine import stacked_module_forward, train_stacked
from .families import FAMILIES, HEADS, TASKS, Forward, Task, build_family
from .parametrizations import Parametrization, get, parametrize, parse_parametrizations
from .store import TransferStore, cell_key, settings_hash

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_T = TypeVar("_T")

__all__ = ["transfer", "TransferResult", "Cell", "parse_lrs", "parse_sizes", "DEFAULTS"]

# per family: widths, depth, lrs, steps, batch. Measured on this machine's 2-core CPU (see docs/transfer.md).
DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"widths": [64, 128, 256, 512, 1024], "depth": 1, "lrs": "2^-12:2^-1", "steps": 200, "batch": 64},
    "transformer": {"widths": [16, 32, 64, 128], "depth": 2, "lrs": "2^-12:2^-1", "steps": 100, "batch": 16},
}
# u-muP's rules are absolute (no base width): its valley sits near lr 2^0 (Blake et al. 2024 report
# optimal lrs near 1); measured on the MLP/digits family: best lr 2^-1 at width 64, 2^0 at 256.
DEFAULT_LRS = {"umup": "2^-7:2^4"}
MAX_CELLS = 100_000
STACK_BUDGET = 60_000_000  # stacked parameters trained in one call (x4 with grads and Adam's moments)


@dataclass
class Cell:
    """One trained network: its coordinates and its loss after the budget (nan: diverged)."""

    parametrization: str
    width: int
    depth: int
    lr: float
    seed: int
    loss: float

    def to_dict(self) -> dict[str, Any]:
        return {"parametrization": self.parametrization, "width": self.width, "depth": self.depth, "lr": self.lr,
                "seed": self.seed, "loss": self.loss if math.isfinite(self.loss) else None}


@dataclass
class TransferResult:
    """Every cell, the drift per parametrization and axis, the settings and the time taken."""

    cells: list[Cell]
    drift: list[analysis.Drift]
    settings: dict[str, Any]
    elapsed_s: float = 0.0
    trained: int = 0  # cells trained by this call (the others came from the store)
    timing: dict[str, float] = field(default_factory=dict)  # "parametrization|width|depth" -> seconds

    def to_dict(self) -> dict[str, Any]:
        return {"initlab_version": _version(), "settings": self.settings,
                "drift": [d.to_dict() for d in self.drift], "cells": [c.to_dict() for c in self.cells],
                "elapsed_s": round(self.elapsed_s, 2), "trained": self.trained, "timing_s": self.timing}

    def losses(self, parametrization: str, axis: str = "width") -> dict[int, np.ndarray]:
        """Size -> (seeds, lrs) losses along ``axis`` (columns in the order of ``settings['lrs'][parametrization]``)."""
        s = self.settings
        lrs, seeds = s["lrs"][parametrization], s["seeds"]
        fixed = ("depth", s["depths"][0]) if axis == "width" else ("width", s["widths"][0])
        sizes = s["widths"] if axis == "width" else s["depths"]
        table = {(c.width if axis == "width" else c.depth, c.lr, c.seed): c.loss for c in self.cells
                 if c.parametrization == parametrization and getattr(c, fixed[0]) == fixed[1]}
        return {k: np.array([[table[(k, lr, sd)] for lr in lrs] for sd in seeds]) for k in sizes}

    def figure(self, axis: str = "width") -> Figure:
        """Loss vs log2 lr: a panel per parametrization, a curve per width (or depth), best lr marked."""
        from .plots import loss_figure

        return loss_figure(self, axis)

    def drift_figure(self) -> Figure:
        """Best log2 lr against log2 width (and depth) per parametrization, with intervals."""
        from .plots import drift_figure

        return drift_figure(self)

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write ``transfer.json``, ``cells.csv``, ``transfer.png`` (``transfer_depth.png``), ``transfer_drift.png``."""
        import csv
        import json

        from ..plots.style import save

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"json": folder / "transfer.json", "csv": folder / "cells.csv", "png": folder / "transfer.png",
                 "drift_png": folder / "transfer_drift.png"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        with paths["csv"].open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(Cell.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(c.to_dict() for c in self.cells)
        save(self.figure("width"), paths["png"])
        if len(self.settings["depths"]) > 1:
            paths["depth_png"] = save(self.figure("depth"), folder / "transfer_depth.png")
        save(self.drift_figure(), paths["drift_png"])
        return paths


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("initlab")
    except PackageNotFoundError:
        return "unknown"


# -- input parsing ------------------------------------------------------------------------------

def parse_sizes(field_name: str, value: str | Sequence[int], minimum_count: int = 1) -> list[int]:
    """``"64,128"`` or a sequence -> sorted distinct positive ints."""
    parts = [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else list(value)
    out = []
    for p in parts:
        if isinstance(p, str) and not p.isdigit() or not isinstance(p, str) and (isinstance(p, bool) or
                                                                              not isinstance(p, (int, np.integer))):
            raise ValidationError(f"{field_name} must be positive integers separated by commas, like 64,128,256; "
                                  f"got {value!r}")
        out.append(int(p))
    if any(v < 1 for v in out):
        raise ValidationError(f"{field_name} must be positive integers, got {value!r}")
    if len(set(out)) != len(out):
        raise ValidationError(f"{field_name} must be distinct, got {value!r}")
    if len(out) < minimum_count:
        raise ValidationError(f"{field_name} needs at least {minimum_count} values to fit a drift, got {value!r}")
    return sorted(out)


_POW = r"\s*2\s*\^\s*(-?\d+(?:\.\d+)?)\s*"


def parse_lrs(value: str | Sequence[float]) -> list[float]:
    """``"2^-14:2^-2"`` (every octave), ``"2^-14:2^-2:0.5"`` (step in octaves) or a list ``"1e-3,3e-3"``
    -> sorted distinct positive learning rates (at least 3: a valley needs a minimum and two sides)."""
    if isinstance(value, str):
        text = value.strip()
        m = re.fullmatch(_POW + ":" + _POW + r"(?::\s*(\d+(?:\.\d+)?)\s*)?", text)
        if m:
            lo, hi, step = float(m.group(1)), float(m.group(2)), float(m.group(3) or 1.0)
            if hi <= lo or step <= 0:
                raise ValidationError(f"lrs {value!r}: the range must go up (2^lo:2^hi with lo < hi) by a positive "
                                      "step")
            n = int(math.floor((hi - lo) / step + 1e-9)) + 1
            out = [2.0 ** (lo + i * step) for i in range(n)]
        else:
            try:
                out = [float(_power(p)) for p in text.split(",") if p.strip()]
            except ValueError:
                raise ValidationError(f"lrs must be a range 2^-14:2^-2 (optionally :STEP in octaves) or numbers "
                                      f"separated by commas, got {value!r}") from None
    else:
        out = [float(v) for v in value]
    if any(not (math.isfinite(v) and v > 0) for v in out):
        raise ValidationError(f"lrs must be positive finite numbers, got {value!r}")
    if len(set(out)) != len(out):
        raise ValidationError(f"lrs must be distinct, got {value!r}")
    if len(out) < 3:
        raise ValidationError(f"lrs needs at least 3 learning rates to find a valley, got {len(out)} ({value!r})")
    return sorted(out)


def _power(text: str) -> float:
    m = re.fullmatch(_POW, text)
    return 2.0 ** float(m.group(1)) if m else float(text)


# -- the grid ----------------------------------------------------------------------------------

def _factory_arity(factory: Callable[..., nn.Module]) -> int:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return 1
    for n in (2, 1):
        try:
            sig.bind(*range(1, n + 1))
            return n
        except TypeError:
            continue
    raise ValidationError("factory must take a width (and optionally a depth): def make(width, depth=1): ...")


def _user_group(factory: Callable[..., nn.Module], arity: int, spec: Parametrization, width: int, depth: int,
                base_width: int, base_depth: int,
                seeds: list[int]) -> tuple[dict[str, torch.Tensor], dict[str, float], Forward]:
    models: list[nn.Module] = []
    factors: dict[str, float] | None = None
    built: dict[int, nn.Module] = {}
    for s in dict.fromkeys(seeds):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)  # parameters parametrize does not redraw keep the factory's init
            try:
                model = factory(width, depth) if arity == 2 else factory(width)
            except Exception as err:
                first = str(err).splitlines()[0] if str(err) else ""
                raise ValidationError(f"factory raised {type(err).__name__}: {first}") from err
        if not isinstance(model, nn.Module):
            raise ValidationError(f"factory returned {type(model).__name__}, expected a torch.nn.Module")
        p = parametrize(model, spec, base_width=base_width, width=width, depth=depth, base_depth=base_depth,
                        blocks=getattr(model, "blocks_for_transfer", ()),
                        branch_outputs=getattr(model, "branch_outputs_for_transfer", ()),
                        generator=make_generator(s * 1_000_003 + width * 101 + depth))
        factors = p.lr_factors()
        built[s] = model
    for s in seeds:
        models.append(copy.deepcopy(built[s]))
    params, forward = stacked_module_forward(models)
    assert factors is not None, "seeds is not empty"
    return params, factors, forward


def transfer(
    factory: Callable[..., nn.Module] | None = None,
    *,
    family: str = "mlp",
    task: str | None = None,
    widths: str | Sequence[int] | None = None,
    depths: str | Sequence[int] | None = None,
    lrs: str | Sequence[float] | None = None,
    parametrizations: str | Sequence[str] = ("sp", "mup"),
    seeds: int = 3,
    steps: int | None = None,
    batch: int | None = None,
    base_width: int | None = None,
    base_depth: int | None = None,
    data_seed: int = 0,
    tolerance: float = analysis.TOLERANCE,
    store: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TransferResult:
    """What :func:`initlab.transfer` does (its docstring has the contract): check the grid, train it, measure the drift."""
    t0 = time.perf_counter()
    family = check_choice("family", str(family).lower(), FAMILIES)
    defaults = DEFAULTS[family]
    if factory is not None and not callable(factory):
        raise ValidationError(f"factory must be callable (width -> nn.Module), got {type(factory).__name__}")
    task_name = check_choice("task", str(task).lower(), TASKS) if task is not None else (
        "digits" if factory is not None else FAMILIES[family][1])
    if factory is None and task_name != FAMILIES[family][1]:
        raise ValidationError(f"task {task_name!r} does not fit family {family!r} (it trains on "
                              f"{FAMILIES[family][1]!r}); give a factory for another task")
    width_list = parse_sizes("widths", defaults["widths"] if widths is None else widths, 2)
    depth_list = [defaults["depth"]] if depths is None else parse_sizes("depths", depths, 1)
    if factory is None and family == "transformer" and any(w % HEADS for w in width_list):
        raise ValidationError(f"widths of the transformer must be multiples of {HEADS} (its heads), got {width_list}")
    names = parse_parametrizations(parametrizations)
    lr_lists = {n: parse_lrs(DEFAULT_LRS.get(n, defaults["lrs"]) if lrs is None else lrs) for n in names}
    seeds = check_int("seeds", seeds, 1, 100)
    steps = check_int("steps", defaults["steps"] if steps is None else steps, 1, 100_000)
    batch = check_int("batch", defaults["batch"] if batch is None else batch, 1, 4096)
    base_width = width_list[0] if base_width is None else check_int("base_width", base_width, 1)
    base_depth = depth_list[0] if base_depth is None else check_int("base_depth", base_depth, 1)
    data_seed = check_int("data_seed", data_seed, 0, 2**31 - 1)
    arity = _factory_arity(factory) if factory is not None else 2
    if len(depth_list) > 1 and arity == 1:
        raise ValidationError("depths needs a factory that takes a depth: def make(width, depth): ...")
    seed_list = list(range(seeds))
    plan = [(w, depth_list[0]) for w in width_list] + [(width_list[0], d) for d in depth_list[1:]]
    total = len(plan) * seeds * sum(len(v) for v in lr_lists.values())
    if total > MAX_CELLS:
        raise ValidationError(f"the grid has {total} cells; at most {MAX_CELLS} (fewer widths, lrs or seeds)")
    settings = {"family": family if factory is None else "factory", "factory": getattr(factory, "__qualname__", None),
                "task": task_name, "widths": width_list, "depths": depth_list, "lrs": lr_lists,
                "parametrizations": names, "seeds": seed_list, "steps": steps, "batch": batch,
                "base_width": base_width, "base_depth": base_depth, "data_seed": data_seed, "optimizer": "adam",
                "tolerance": tolerance, "loss": "cross-entropy on the training split after the budget"}
    keyed = {k: v for k, v in settings.items() if k not in ("parametrizations", "widths", "depths", "lrs", "seeds",
                                                             "tolerance")}
    if factory is not None:  # an edited model file is another model: its cells are new
        keyed["factory_source"] = _source_hash(factory)
    sid = settings_hash(keyed)
    data: Task = TASKS[task_name](data_seed)
    db = TransferStore(store) if store is not None else None
    cells: list[Cell] = []
    trained, done, timing = 0, 0, {}
    try:
        if db is not None:
            db.register(sid, settings)
        for name in names:
            spec = get(name)
            for width, depth in plan:
                coords = [(lr, s) for s in seed_list for lr in lr_lists[name]]
                keys = [cell_key(sid, name, width, depth, lr, s) for lr, s in coords]
                have = db.losses(keys) if db is not None else {}
                todo = [(c, k) for c, k in zip(coords, keys, strict=True) if k not in have]
                results = dict(have)
                tg = time.perf_counter()
                for chunk in _chunks(todo, factory, family, data, spec, width, depth, base_width, base_depth):
                    c_lrs, c_seeds = [c[0] for c, _ in chunk], [c[1] for c, _ in chunk]
                    if factory is None:
                        params, rules, forward = build_family(family, spec, data, width, depth, base_width,
                                                              base_depth, c_seeds)
                        factors = {n: r.lr_factor for n, r in rules.items()}
                    else:
                        params, factors, forward = _user_group(factory, arity, spec, width, depth, base_width,
                                                               base_depth, c_seeds)
                    losses = train_stacked(forward, params, factors, c_lrs, c_seeds, data, steps, batch)
                    rows = [(k, sid, name, width, depth, lr, s, loss)
                            for ((lr, s), k), loss in zip(chunk, losses, strict=True)]
                    if db is not None:
                        db.add(rows)  # one transaction per trained chunk
                    results.update({k: loss for (_, k), loss in zip(chunk, losses, strict=True)})
                    trained += len(chunk)
                if todo:
                    timing[f"{name}|{width}|{depth}"] = round(time.perf_counter() - tg, 3)
                cells.extend(Cell(name, width, depth, lr, s, results[k])
                             for (lr, s), k in zip(coords, keys, strict=True))
                done += len(coords)
                if progress is not None:
                    progress(done, total)
    finally:
        if db is not None:
            db.close()
    result = TransferResult(cells, [], settings, trained=trained, timing=timing)
    for name in names:
        x = np.log2(np.array(lr_lists[name]))
        result.drift.append(analysis.drift(name, "width", x, result.losses(name, "width"), seed=data_seed,
                                           tolerance=tolerance))
        if len(depth_list) > 1:
            result.drift.append(analysis.drift(name, "depth", x, result.losses(name, "depth"), seed=data_seed,
                                               tolerance=tolerance))
    result.elapsed_s = time.perf_counter() - t0
    return result


def _source_hash(factory: Callable[..., nn.Module] | None) -> str | None:
    """sha256 of the source file that defines ``factory`` (None for the built-in families or without a source)."""
    if factory is None:
        return None
    import hashlib

    try:
        module = inspect.getmodule(factory)
        if module is None:  # getsource(None) raises TypeError: no source, as below
            return None
        return hashlib.sha256(inspect.getsource(module).encode()).hexdigest()[:16]
    except (TypeError, OSError):
        return None


def _chunks(todo: list[_T], factory: Callable[..., nn.Module] | None, family: str, data: Task,
            spec: Parametrization, width: int, depth: int, base_width: int, base_depth: int) -> list[list[_T]]:
    """Split the cells to train so each call holds at most :data:`STACK_BUDGET` stacked parameters."""
    if not todo:
        return []
    if factory is None:
        params, _, _ = build_family(family, spec, data, width, depth, base_width, base_depth, [0])
        size = sum(p.numel() for p in params.values())
    else:
        size = 1_000_000  # unknown until built; a conservative guess
    per_call = max(1, STACK_BUDGET // max(1, size))
    return [todo[i:i + per_call] for i in range(0, len(todo), per_call)]
