"""Coordinate check: how each module's output scale moves with width over the first steps.

The width check of Maximal Update Parametrization (Yang et al. 2022, "Tensor Programs V:
Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer", section 4 and
figure 5; the method of ``mup.coord_check.get_coord_data`` in microsoft/mup): build the model
at several widths (``factory(width)``), train each for a few steps on one fixed batch, and
record, at every step's forward pass, the mean absolute value ``mean |x|`` of every module's
output ("l1" in mup). Step 1 is the initialization (its forward runs before the first update).
In a parametrization whose hyperparameters transfer across width, every activation keeps a
width-independent scale during training; in the standard parametrization with Adam, the
hidden activations and logits grow with width after the first updates, because an update of
size ``lr`` to each entry of a ``width x width`` matrix moves its output by ``lr * width``.

The measurement here is the slope of ``log(mean over seeds of mean|x|)`` against
``log(width)``, per module and step: the exponent ``a`` of ``mean|x| ~ width^a``, with an
interval over seeds: ``a +- t * sd / sqrt(seeds)``, ``sd`` the standard deviation of the slopes
fitted to each seed alone and ``t`` Student's quantile for a two-sided
:data:`~initlab.diagnostics.thresholds.SLOPE_INTERVAL` interval with ``seeds - 1`` degrees of
freedom (each seed is an independent draw of every width's model, so the per-seed slopes are
independent estimates; with 3 seeds a bootstrap over them is too narrow, t is not). The verdict per
module reads the last step's interval: "flat" when it lies inside ``(-threshold, threshold)``
(default :data:`FLAT_SLOPE`), "grows" or "shrinks" when it lies beyond ``+threshold`` or
``-threshold``, "undetermined" when it straddles one of them. With one seed there is no interval
and the verdict reads the slope itself (a warning says so); widths spanning less than a factor
:data:`~initlab.diagnostics.thresholds.MIN_WIDTH_SPAN` give a warning too.

    result = initlab.coord_check(make_mlp, [64, 128, 256, 512, 1024], input_shape=(32,))
    data, verdicts = result  # a pandas DataFrame (width, seed, step, module, l1) and the verdicts
    result.figure()          # a panel per step, a curve per module, log-log axes

``lr_scaling="mup"`` applies muP's learning-rate rule for the optimizer (``mup.MuAdam`` /
``mup.MuSGD``; Tensor Programs V, Table 3): each parameter's dimensions that change with width
are found by comparing its shape with the base-width model's (``mup.set_base_shapes``); with
Adam, matrix-like parameters (two such dimensions: the hidden weights) get ``lr / m`` where
``m`` is their fan-in's width multiplier; with SGD, vector-like parameters (one such
dimension: input weights, biases, the readout) get ``lr * m`` and matrix-like ones
``lr * fan_out_mult / fan_in_mult``. The readout multiplier (``mup.MuReadout``) is the model's
part: the factory builds it.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._inputs import call_model, error_line
from ._rng import make_generator
from ._validation import ValidationError, check_choice, check_float, check_int, did_you_mean
from ._version import __version__
from .diagnostics.doctor import build_model, load_inputs
from .diagnostics.thresholds import FLAT_SLOPE, MIN_WIDTH_SPAN, SLOPE_INTERVAL

if TYPE_CHECKING:  # pandas and matplotlib load when a result is read or drawn
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["coord_check", "CoordCheck", "ModuleVerdict", "load_width_factory", "parse_widths",
           "OPTIMIZERS", "LR_SCALINGS", "LOSSES", "FLAT_SLOPE", "MAX_STEPS", "MAX_SEEDS"]

OPTIMIZERS = ("sgd", "adam", "adamw")
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}  # mup.coord_check.get_coord_data's defaults
LR_SCALINGS = ("none", "mup")
LOSSES = ("mse", "cross_entropy")
MAX_STEPS = 100  # a coordinate check looks at the first steps; more is a training run
MAX_SEEDS = 100
MIN_WIDTHS = 3  # two points always fit a line exactly; a third one tests it
# FLAT_SLOPE (|slope| below it reads "flat") and the interval's settings live in diagnostics/thresholds.py
# with the measurements that chose them.


@dataclass
class ModuleVerdict:
    """One module's verdict: the exponent ``slope`` of ``mean|x| ~ width^slope`` at ``step``."""

    module: str
    slope: float
    # "flat", "grows", "shrinks", "undetermined" (the interval straddles the threshold), or "undefined"
    # (an output of exactly 0, or not finite)
    verdict: str
    step: int
    slope_sd: float = float("nan")  # standard deviation of the per-seed slopes (nan with one seed)
    kind: str = ""  # the module's class name
    reason: str = ""  # "undefined" only: what was measured instead of a slope
    slope_lo: float = float("nan")  # the slope's interval over seeds (Student t; nan with one seed)
    slope_hi: float = float("nan")

    @property
    def message(self) -> str:
        if self.verdict == "undefined":
            why = self.reason or "mean|x| is 0 or not finite at some width"
            return f"{self.module}: {why} at step {self.step}; no slope"
        interval = (f", interval {self.slope_lo:+.2f}..{self.slope_hi:+.2f} over seeds"
                    if math.isfinite(self.slope_lo) and math.isfinite(self.slope_hi) else "")
        return (f"{self.module}: mean|x| ~ width^{round(self.slope, 2) + 0.0:.2f} at step {self.step}{interval} "
                f"({self.verdict})")

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "kind": self.kind, "slope": _num(self.slope), "slope_sd": _num(self.slope_sd),
                "slope_interval": [_num(self.slope_lo), _num(self.slope_hi)], "verdict": self.verdict,
                "step": self.step}


@dataclass
class CoordCheck:
    """What :func:`coord_check` measured. Unpacks as ``data, verdicts = result``."""

    data: pd.DataFrame  # one row per (width, seed, step, module): l1 = mean |x| of the output
    slopes: pd.DataFrame  # one row per (module, step): slope, slope_sd, verdict
    verdicts: list[ModuleVerdict]  # per module, at the last step, in forward order
    widths: list[int]
    steps: int
    seeds: int
    threshold: float
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what limits the verdicts: one seed, a narrow width range

    def __iter__(self) -> Iterator[Any]:
        yield self.data
        yield self.verdicts

    @property
    def modules(self) -> list[str]:
        """Recorded modules in forward order."""
        return list(dict.fromkeys(self.data["module"]))

    def verdict(self, module: str) -> ModuleVerdict:
        """The verdict of one module (by name)."""
        for v in self.verdicts:
            if v.module == module:
                return v
        raise ValidationError(f"unknown module {module!r}{did_you_mean(module, self.modules)} "
                              f"(recorded: {', '.join(self.modules)})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: settings, verdicts, the per-step slopes and the mean over seeds per width."""
        means = self.data.groupby(["module", "step", "width"], sort=False)["l1"].mean()
        curves: dict[str, list[list[float | None]]] = {f"{m}|{s}": [] for m, s in self.slopes[["module", "step"]].itertuples(index=False)}
        for (m, s, w), v in means.items():
            curves[f"{m}|{s}"].append([int(w), _num(float(v))])
        return {
            "initlab_version": __version__, "widths": self.widths, "steps": self.steps, "seeds": self.seeds,
            "threshold": self.threshold, "settings": self.settings, "warnings": list(self.warnings),
            "verdicts": [v.to_dict() for v in self.verdicts],
            "slopes": [{"module": r.module, "step": int(r.step), "slope": _num(r.slope), "slope_sd": _num(r.slope_sd),
                        "slope_interval": [_num(r.slope_lo), _num(r.slope_hi)],
                        "verdict": r.verdict, "l1_by_width": curves[f"{r.module}|{r.step}"]}
                       for r in self.slopes.itertuples(index=False)],
        }

    def figure(self, title: str | None = None) -> Figure:
        """A panel per step (at most :data:`MAX_PANELS`), a curve per module, log-log axes."""
        return _figure(self, title)

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write ``coord_check.csv`` (every measurement), ``coord_check.json`` and ``coord_check.png`` into ``out``."""
        import json

        from .plots.style import save

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"csv": folder / "coord_check.csv", "json": folder / "coord_check.json",
                 "png": folder / "coord_check.png"}
        self.data.to_csv(paths["csv"], index=False)
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        save(self.figure(), paths["png"])
        return paths


def _num(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


# -- input checks -----------------------------------------------------------------------------

def parse_widths(widths: str | Sequence[int]) -> list[int]:
    """``"64,128,256"`` or a sequence -> sorted distinct positive ints (at least :data:`MIN_WIDTHS`)."""
    parts = [p.strip() for p in widths.split(",")] if isinstance(widths, str) else list(widths)
    out = []
    for p in parts:
        try:
            value = int(p) if isinstance(p, str) else check_int("widths", p)  # 64.0 is not a width
        except (ValueError, ValidationError):
            value = 0
        if value < 1:
            raise ValidationError(f"widths must be positive integers separated by commas, like 64,128,256; got {widths!r}")
        out.append(value)
    if len(set(out)) != len(out):
        raise ValidationError(f"widths must be distinct, got {widths!r}")
    if len(out) < MIN_WIDTHS:
        raise ValidationError(f"widths needs at least {MIN_WIDTHS} widths to fit a slope, got {len(out)} ({widths!r})")
    return sorted(out)


def _check_width_parameter(factory: Callable[..., Any], name: str) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C callable: let the call decide
        return
    try:
        signature.bind(1)
    except TypeError:
        raise ValidationError(
            f"factory '{name}' takes no width parameter: coord-check builds the model as {name}(width), "
            f"e.g. def {name}(width): return nn.Sequential(nn.Linear(32, width), ...)") from None


def load_width_factory(target: str) -> Callable[[int], nn.Module]:
    """The factory named by ``"file.py:make"`` (as ``initlab doctor`` loads it), checked to take a width."""
    from .diagnostics.doctor import load_factory, split_target

    factory = load_factory(target)
    _check_width_parameter(factory, split_target(target)[1])
    return cast("Callable[[int], nn.Module]", factory)  # checked to take a width; build_model checks the module


# -- the measurement ----------------------------------------------------------------------------

class _Hooks:
    """Forward hooks recording ``mean |x|`` of every chosen module's output, for one forward pass."""

    def __init__(self, model: nn.Module, names: list[str] | None) -> None:
        self.rows: list[tuple[str, float]] = []
        self.kinds: dict[str, str] = {}
        self._handles = []
        named = dict(model.named_modules())
        chosen = names if names is not None else [n for n, m in named.items() if n and not any(True for _ in m.children())]
        if not chosen:  # the model is one leaf module
            chosen = [""]
        for name in chosen:
            self._handles.append(named[name].register_forward_hook(functools.partial(self._record, name or "(model)")))

    def _record(self, name: str, module: nn.Module, inputs: Any, output: Any) -> None:
        self.kinds.setdefault(name, type(module).__name__)
        with torch.no_grad():
            if isinstance(output, torch.Tensor):
                if output.is_floating_point() or output.is_complex():
                    self.rows.append((name, float(output.detach().abs().float().mean())))
            elif isinstance(output, (tuple, list)):
                for i, item in enumerate(output):
                    if isinstance(item, torch.Tensor) and item.is_floating_point():
                        self.rows.append((f"{name}[{i}]", float(item.detach().abs().float().mean())))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def _lr_factor(name: str, shape: tuple[int, ...], base: tuple[int, ...] | None, optimizer: str) -> float:
    """muP's learning-rate multiplier of one parameter (``mup.MuAdam`` / ``mup.MuSGD``)."""
    if base is None or len(base) != len(shape):
        raise ValidationError(f"lr-scaling mup: parameter {name!r} has shape {shape} here but "
                              f"{'no counterpart' if base is None else base} at the base width")
    mults = [s / b for s, b in zip(shape, base, strict=False)]
    infinite = [m for m in mults if m != 1]
    if len(infinite) > 2:
        raise ValidationError(f"lr-scaling mup: parameter {name!r} has {len(infinite)} dimensions that change with width; "
                              "muP defines at most 2")
    if optimizer in ("adam", "adamw"):  # MuAdam: matrix-like lr / fan-in multiplier
        return 1.0 / infinite[-1] if len(infinite) == 2 else 1.0
    if len(infinite) == 1:  # MuSGD: vector-like lr * width multiplier
        return infinite[0]
    if len(infinite) == 2:  # matrix-like lr / (fan-in mult / fan-out mult)
        return infinite[0] / infinite[-1]
    return 1.0


def _optimizer(model: nn.Module, optimizer: str, lr: float, scaling: str,
               base_shapes: dict[str, tuple[int, ...]] | None) -> torch.optim.Optimizer:
    make: Callable[..., torch.optim.Optimizer] = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if scaling == "none" or base_shapes is None:
        return make([p for _, p in named], lr=lr)
    groups: dict[float, list[torch.Tensor]] = {}
    for name, p in named:
        groups.setdefault(_lr_factor(name, tuple(p.shape), base_shapes.get(name), optimizer), []).append(p)
    return make([{"params": ps, "lr": lr * f} for f, ps in groups.items()], lr=lr)


def _loss(output: Any, loss: str, targets: torch.Tensor | None, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(output, torch.Tensor):
        raise ValidationError(f"the model returned {type(output).__name__}; coord-check needs a tensor output for the "
                              f"{loss} loss")
    if targets is None:  # drawn once, at the first forward, from the data generator
        if loss == "mse":
            targets = torch.randn(output.shape, generator=generator)
        else:
            if output.ndim != 2:
                raise ValidationError(f"loss cross_entropy needs (batch, classes) logits, the model returned shape "
                                      f"{tuple(output.shape)}; use --loss mse")
            targets = torch.randint(output.shape[1], (output.shape[0],), generator=generator)
    targets = targets.to(output.device)
    try:
        value = F.mse_loss(output, targets.to(output.dtype)) if loss == "mse" else F.cross_entropy(output, targets)
    except Exception as err:
        raise ValidationError(f"the {loss} loss rejected the model's output of shape {tuple(output.shape)} and targets "
                              f"of shape {tuple(targets.shape)}: {error_line(err)}") from err
    return value, targets


def coord_check(
    factory: Callable[[int], nn.Module],
    widths: Sequence[int] | str,
    inputs: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    *,
    input_shape: Sequence[int] | str | None = None,
    batch: int = 64,
    steps: int = 5,
    seeds: int = 3,
    optimizer: str = "adam",
    lr: float | None = None,
    lr_scaling: str = "none",
    base_width: int | None = None,
    loss: str = "mse",
    modules: Sequence[str] | None = None,
    threshold: float = FLAT_SLOPE,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> CoordCheck:
    """Train ``factory(width)`` for ``steps`` steps on one fixed batch at each width and seed, and
    measure how every module's ``mean |x|`` scales with width (see the module docstring).

    ``inputs``: the batch, else a standard-normal ``(batch, *input_shape)`` drawn from ``seed``;
    ``targets``: else standard-normal targets of the output's shape (``loss="mse"``) or uniform
    labels (``"cross_entropy"``), drawn after the inputs from the same generator. The model's
    own initialization draws from torch's global RNG (as ``nn.Linear`` does), seeded with
    ``seed + i`` for the ``i``-th seed and restored afterwards, so every width of one seed starts
    from the same stream and the caller's RNG state is left as it was. ``modules``: names (from
    ``named_modules``) to record; default every leaf module. ``progress(done, total)`` is called
    after each (width, seed) run.
    """
    widths = parse_widths(widths)
    steps = check_int("steps", steps, 1, MAX_STEPS)
    seeds = check_int("seeds", seeds, 1, MAX_SEEDS)
    optimizer = check_choice("optimizer", str(optimizer).lower(), OPTIMIZERS)
    lr = DEFAULT_LR[optimizer] if lr is None else check_float("lr", lr, 0.0, strict_minimum=True)
    lr_scaling = check_choice("lr-scaling", str(lr_scaling).lower(), LR_SCALINGS)
    base_width = widths[0] if base_width is None else check_int("base-width", base_width, 1)
    loss = check_choice("loss", str(loss).lower().replace("-", "_"), LOSSES)
    threshold = check_float("threshold", threshold, 0.0, strict_minimum=True)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    name = getattr(factory, "__name__", "factory")
    if not callable(factory):
        raise ValidationError(f"factory must be callable (width -> nn.Module), got {type(factory).__name__}")
    _check_width_parameter(factory, name)

    data_gen = make_generator(seed)
    if inputs is None:
        inputs = cast(torch.Tensor, load_inputs(input_shape, batch, None, data_gen))  # without a file: one tensor
    elif not isinstance(inputs, torch.Tensor):
        raise ValidationError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")

    base_shapes = None
    if lr_scaling == "mup":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            base_shapes = _shapes(build_model(functools.partial(factory, base_width), name))

    rows: list[tuple[int, int, int, str, float]] = []
    kinds: dict[str, str] = {}  # module -> class name
    total, done = len(widths) * seeds, 0
    for i in range(seeds):
        for width in widths:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + i)
                model = build_model(functools.partial(factory, width), name)
                if modules is not None and done == 0:
                    known = [n for n, _ in model.named_modules() if n]
                    for m in modules:
                        check_choice("module", m, known)

                def record(step: int, module: str, kind: str, value: float, w: int = width, s: int = i) -> None:
                    rows.append((w, s, step, module, value))
                    kinds.setdefault(module, kind)

                targets = _train(model, inputs, targets, steps, optimizer, lr, lr_scaling, base_shapes, loss,
                                 list(modules) if modules is not None else None, data_gen, record)
            done += 1
            if progress is not None:
                progress(done, total)
    return _summarize(rows, kinds, widths, steps, seeds, threshold, {
        "factory": name, "optimizer": optimizer, "lr": lr, "lr_scaling": lr_scaling, "base_width": base_width,
        "loss": loss, "batch": int(inputs.shape[0]), "input_shape": list(inputs.shape[1:]), "seed": seed,
    })


def _train(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None, steps: int, optimizer: str,
           lr: float, scaling: str, base_shapes: dict[str, tuple[int, ...]] | None, loss: str, names: list[str] | None,
           data_gen: torch.Generator, record: Callable[[int, str, str, float], None]) -> torch.Tensor | None:
    """``steps`` optimizer steps on the fixed batch, recording each step's forward (mup's order)."""
    model.train()
    device = next((p.device for p in model.parameters()), inputs.device)
    x = inputs.to(device)
    opt = _optimizer(model, optimizer, lr, scaling, base_shapes)
    for step in range(1, steps + 1):
        hooks = _Hooks(model, names)
        try:  # an error inside the user's forward: the input does not fit
            output = call_model(model, x, lambda err: ValidationError(
                f"the model rejected input of shape {tuple(x.shape)}: {error_line(err)}"))
        finally:
            hooks.remove()
        value, targets = _loss(output, loss, targets, data_gen)
        opt.zero_grad(set_to_none=True)
        value.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
        opt.step()
        seen: dict[str, int] = {}
        for module, l1 in hooks.rows:  # a module called twice in one forward gets "name#2"
            seen[module] = seen.get(module, 0) + 1
            kind = hooks.kinds.get(module.split("[")[0], "")
            record(step, module if seen[module] == 1 else f"{module}#{seen[module]}", kind, l1)
    return targets


def _fit_slope(widths: np.ndarray, values: np.ndarray) -> float:
    if values.size < 2 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        return float("nan")
    return float(np.polyfit(np.log(widths), np.log(values), 1)[0])


def _undefined_reason(mean: pd.Series, widths: list[int]) -> str:
    """Why no slope: the widths where the module was not recorded, or where mean|x| is 0 / not finite."""
    missing = [w for w in widths if w not in set(mean.index)]
    if missing:
        return f"not recorded at width {', '.join(str(w) for w in missing)} (no slope across all widths)"
    bad = [int(w) for w, v in mean.items() if not (math.isfinite(v) and v > 0)]
    return (f"mean|x| is {'0' if all(mean[w] == 0 for w in bad) else '0 or not finite'} at width "
            f"{', '.join(str(w) for w in bad)}") if bad else ""


def _verdict(slope: float, threshold: float, lo: float = float("nan"), hi: float = float("nan")) -> str:
    """From the interval ``[lo, hi]`` when there is one (else from the slope): flat inside
    ``(-threshold, threshold)``, grows / shrinks beyond it, undetermined across ``+-threshold``."""
    if not math.isfinite(slope):
        return "undefined"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo = hi = slope
    if -threshold < lo and hi < threshold:
        return "flat"
    if lo >= threshold:
        return "grows"
    if hi <= -threshold:
        return "shrinks"
    return "undetermined"


def _slope_interval(slope: float, per_seed: list[float]) -> tuple[float, float]:
    """``slope +- t * sd / sqrt(n)`` over the ``n`` per-seed slopes (Student's t, two-sided SLOPE_INTERVAL);
    nan with fewer than 2 seeds or a slope that is not finite."""
    n = len(per_seed)
    if n < 2 or not math.isfinite(slope):
        return float("nan"), float("nan")
    from scipy import stats  # lazy: scipy takes half a second to import

    half = float(stats.t.ppf((1 + SLOPE_INTERVAL) / 2, n - 1)) * float(np.std(per_seed, ddof=1)) / math.sqrt(n)
    return slope - half, slope + half


def _warnings(widths: list[int], seeds: int) -> list[str]:
    out = []
    span = widths[-1] / widths[0]
    if span < MIN_WIDTH_SPAN:
        out.append(f"the widths span only x{span:.3g} ({widths[0]}..{widths[-1]}), less than x{MIN_WIDTH_SPAN:g}: "
                   "over so narrow a range the seed-to-seed noise outweighs a slope; widen the range (e.g. 64..1024)")
    if seeds < 2:
        out.append("one seed: no interval over seeds, so a verdict can change with --seed; use --seeds 3 or more")
    return out


def _summarize(rows: list[tuple[int, int, int, str, float]], kinds: dict[str, str], widths: list[int], steps: int,
               seeds: int, threshold: float, settings: dict[str, Any]) -> CoordCheck:
    import pandas as pd

    data = pd.DataFrame(rows, columns=["width", "seed", "step", "module", "l1"])
    order = list(dict.fromkeys(data["module"]))
    slope_rows = []
    for module in order:
        part = data[data["module"] == module]
        for step in range(1, steps + 1):
            at = part[part["step"] == step]
            mean = at.groupby("width")["l1"].mean()
            slope = _fit_slope(mean.index.to_numpy(float), mean.to_numpy(float)) if len(mean) == len(widths) else float("nan")
            per_seed = [_fit_slope(g["width"].to_numpy(float), g["l1"].to_numpy(float)) for _, g in at.groupby("seed")]
            per_seed = [s for s in per_seed if math.isfinite(s)]
            sd = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan")
            lo, hi = _slope_interval(slope, per_seed) if len(per_seed) == seeds else (float("nan"), float("nan"))
            slope_rows.append((module, step, slope, sd, lo, hi, _verdict(slope, threshold, lo, hi),
                               _undefined_reason(mean, widths)))
    slopes = pd.DataFrame(slope_rows, columns=["module", "step", "slope", "slope_sd", "slope_lo", "slope_hi", "verdict",
                                               "reason"])
    last = slopes[slopes["step"] == steps]
    verdicts = [ModuleVerdict(r.module, float(r.slope), r.verdict, steps, float(r.slope_sd), kinds.get(r.module, ""),
                              r.reason if r.verdict == "undefined" else "", float(r.slope_lo), float(r.slope_hi))
                for r in last.itertuples(index=False)]
    slopes = slopes.drop(columns="reason")
    return CoordCheck(data, slopes, verdicts, widths, steps, seeds, threshold, settings, _warnings(widths, seeds))


# -- the figure ---------------------------------------------------------------------------------

MAX_PANELS = 6  # more steps: the first, the last and evenly spaced ones between
MAX_LEGEND = 20  # legend entries at most (modules that do not read flat first)


def _panel_steps(steps: int) -> list[int]:
    if steps <= MAX_PANELS:
        return list(range(1, steps + 1))
    return sorted({int(round(s)) for s in np.linspace(1, steps, MAX_PANELS)})


def _figure(result: CoordCheck, title: str | None) -> Figure:
    from .plots.style import style

    with style():
        return _draw(result, title)


def _draw(result: CoordCheck, title: str | None) -> Figure:
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    shown = _panel_steps(result.steps)
    modules = result.modules
    cmap = colormaps["tab10" if len(modules) <= 10 else "viridis"]
    colors = {m: cmap(i) if len(modules) <= 10 else cmap(i / max(1, len(modules) - 1)) for i, m in enumerate(modules)}
    entries = min(len(modules), MAX_LEGEND)
    columns = 1 if entries <= 10 else 2
    fig = Figure(figsize=(2.9 * len(shown) + 2.6 * columns, max(3.4, 0.2 * math.ceil(entries / columns) + 1.4)),
                 layout="constrained")
    axes = fig.subplots(1, len(shown), sharey=True, squeeze=False)[0]
    means = result.data.groupby(["module", "step", "width"], sort=True)["l1"].mean()
    curves: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for (module, step, width), value in means.items():
        if value > 0 and math.isfinite(value):  # log axes: an output of exactly 0 has no point
            curves.setdefault((module, int(step)), []).append((int(width), float(value)))
    finals = {v.module: v for v in result.verdicts}
    # a deep model: the legend lists MAX_LEGEND modules, those that do not read flat first (steepest first)
    priority = sorted(modules, key=lambda m: (finals[m].verdict == "flat", -abs(np.nan_to_num(finals[m].slope))))
    listed = set(priority[:MAX_LEGEND])
    for ax, step in zip(axes, shown, strict=False):
        for module in modules:
            points = curves.get((module, step), [])
            v = finals[module]
            label = f"{module} {v.kind}: {v.verdict}" + (f" (w^{round(v.slope, 2) + 0.0:.2f})" if v.verdict != "undefined" else "")
            label = label if module in listed else "_nolegend_"
            ax.plot([w for w, _ in points], [y for _, y in points], "o-", ms=3, lw=1.4, color=colors[module], label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(result.widths, [str(w) for w in result.widths], fontsize=8)
        ax.minorticks_off()
        ax.set_title(f"step {step}" + (" (init)" if step == 1 else ""))
        ax.set_xlabel("width")
    axes[0].set_ylabel("mean |x| of the module's output")
    hidden = len(modules) - len(listed)
    axes[-1].legend(title=f"at step {result.steps} (flat: |slope| < {result.threshold:g})"
                    + (f"\n{hidden} more modules not listed" if hidden else ""), loc="upper left", ncols=columns,
                    bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8, title_fontsize=8)
    s = result.settings
    fig.suptitle(title or (f"coord check of {s.get('factory', 'the model')}: {s.get('optimizer')} lr {s.get('lr'):g}"
                           + (", muP lr scaling" if s.get("lr_scaling") == "mup" else "")
                           + f", mean over {result.seeds} seed{'s' if result.seeds > 1 else ''}"))
    return fig
