"""``initlab doctor``'s library side: load a user's model factory and diagnose it (the report
files are written by :func:`initlab.report.doctor.write_report`).

Every failure the user can cause (missing file, missing factory, a factory that raises, an
input the model rejects, unreadable data) is a one-line :class:`ValidationError` or
:class:`DataError` naming the cause; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import torch
from torch import nn

from .._inputs import error_line
from .._rng import make_generator
from .._validation import DataError, InitlabError, ValidationError, check_int, did_you_mean
from .._version import __version__
from ..initializers import apply_init, get
from .diagnose import Diagnosis, diagnose
from .io import Inputs, batch_shape, check_dtype, describe, load_data, make_inputs, with_dtype

__all__ = ["DoctorResult", "split_target", "load_factory", "build_model", "parse_shape", "load_inputs", "run_doctor"]


@dataclass
class DoctorResult:
    """What ``initlab doctor`` found: the model as built, and after ``init`` when one was given."""

    target: str  # "FILE.py:FACTORY" as given
    input_shape: tuple[int, ...]  # the batch's shape, batch dimension first
    before: Diagnosis
    after: Diagnosis | None = None
    init: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``before.to_dict()`` (plus ``model``); with an init: ``{"before", "after", "init"}``."""
        head = {"initlab_version": __version__, "model": self.target}
        if self.after is None:
            return {**head, **self.before.to_dict()}
        return {**head, "init": self.init, "input_shape": list(self.input_shape),
                "before": self.before.to_dict(), "after": self.after.to_dict()}


def split_target(target: str) -> tuple[str, str]:
    """``"FILE.py:FACTORY"`` (or ``"MODULE:FACTORY"``) -> ``(where, factory name)``; one-line error otherwise."""
    where, sep, name = str(target).rpartition(":")
    if not sep or not where or not name:
        raise ValidationError(f"model must be FILE.py:FACTORY or MODULE:FACTORY, got {target!r}")
    return where, name


def _import(where: str) -> ModuleType:
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        if not path.is_file():
            raise ValidationError(f"model file '{where}' not found")
        module_name = f"_initlab_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ValidationError(f"cannot import '{where}': not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))  # so the file can import its neighbours
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # the user's file failed to run
            sys.modules.pop(module_name, None)
            raise ValidationError(f"importing '{where}' raised {error_line(err)}") from err
        finally:
            sys.path.remove(str(path.resolve().parent))
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as err:
        raise ValidationError(f"module '{where}' not found ({error_line(err)})") from err
    except Exception as err:
        raise ValidationError(f"importing '{where}' raised {error_line(err)}") from err


def load_factory(target: str) -> Callable[[], Any]:
    """The callable named by ``"path/to/file.py:make"`` or ``"package.module:make"``."""
    where, name = split_target(target)
    module = _import(where)
    factory = getattr(module, name, None)
    if factory is None or not callable(factory):
        own = sorted(n for n, obj in vars(module).items()
                     if callable(obj) and not n.startswith("_")
                     and getattr(obj, "__module__", None) == module.__name__)
        listing = f" (callables: {', '.join(own)})" if own else " (it defines no callables)"
        what = "not found" if factory is None else "is not callable"
        raise ValidationError(f"factory '{name}' {what} in '{where}'{did_you_mean(name, own)}{listing}")
    return cast("Callable[[], Any]", factory)


def build_model(factory: Callable[[], Any], name: str = "factory") -> nn.Module:
    """Call ``factory()`` and check it returned a ``torch.nn.Module``."""
    try:
        model = factory()
    except Exception as err:
        raise ValidationError(f"factory '{name}' raised {error_line(err)}") from err
    if not isinstance(model, nn.Module):
        raise ValidationError(f"factory '{name}' returned {type(model).__name__}, expected a torch.nn.Module")
    return model


def parse_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"3,32,32"`` -> ``(3, 32, 32)``: one sample's shape, without the batch dimension."""
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    try:
        shape = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise ValidationError(f"input-shape must be positive integers separated by commas, like 3,32,32; got {text!r}")
    return shape


def load_inputs(input_shape: str | Sequence[int] | None = None, batch: int = 64, data: str | Path | None = None,
                seed: int | torch.Generator = 0, dtype: str | None = None, vocab: int | None = None) -> Inputs:
    """A random batch ``(batch, *input_shape)`` drawn from ``seed`` (standard normal, or with
    ``dtype="long"`` integer ids in ``[0, vocab)``), or the first ``batch`` rows of the file
    ``data`` (see :func:`initlab.diagnostics.io.load_data`; rows must have ``input_shape`` if given),
    cast to ``dtype`` when one is given (see :func:`initlab.diagnostics.io.with_dtype`)."""
    batch = check_int("batch", batch, 1)
    shape = parse_shape(input_shape) if input_shape is not None else None
    if data is None:
        if shape is None:
            raise ValidationError("give --input-shape (one sample's shape, like 3,32,32) or --data FILE.npy")
        return make_inputs((batch, *shape), dtype or "float", vocab, make_generator(seed))
    inputs = load_data(data, batch)
    if dtype is not None:  # else the file's kind is kept: integer arrays stay token ids
        inputs = with_dtype(inputs, dtype)
    rows = batch_shape(inputs)[1:]
    if shape is not None and rows != shape:
        raise DataError(f"data '{data}' has rows of shape {rows}, but --input-shape is {shape}")
    return inputs


def _diagnose(model: nn.Module, inputs: Inputs, output: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> Diagnosis:
    try:
        return diagnose(model, inputs, output=output, progress=progress)
    except InitlabError:
        raise
    except Exception as err:  # raised inside the user's forward or backward: the input does not fit
        raise ValidationError(f"the model rejected input {describe(inputs)}: {error_line(err)}") from err


def _labelled(progress: Callable[[str, int, int | None], None] | None, label: str) -> Callable[[int, int], None] | None:
    """``progress`` for one diagnosis: told ``(label, 0, None)`` now (the forward and backward pass
    begins), then ``(label, done, total)`` after each layer."""
    if progress is None:
        return None
    progress(label, 0, None)
    return lambda done, total: progress(label, done, total)


def run_doctor(target: str, input_shape: str | Sequence[int] | None = None, batch: int = 64,
               data: str | Path | None = None, init: str | Callable[..., Any] | None = None, seed: int = 0,
               dtype: str | None = None, vocab: int | None = None, output: str | None = None,
               progress: Callable[[str, int, int | None], None] | None = None) -> DoctorResult:
    """Build the model of ``target``, diagnose it on a batch, and again after ``init`` if given.

    The batch and then the re-initialized copy (``apply_init(copy, init, bias="zeros")``) are
    drawn, in that order, from one generator seeded with ``seed``: drawing both from two
    generators with the same seed would make the first layer's weights a scaled copy of the
    inputs. ``progress(label, done, total)`` follows each diagnosis (``label``: "as built", then
    the initializer's name): ``total`` None while the forward and backward pass runs, then layers.
    """
    reinit = init if callable(init) else None  # e.g. the CLI's ``--init auto`` (initlab.autoinit), a layer above
    init_spec = get(init) if init is not None and not callable(init) else None  # a bad name fails before any work
    check_dtype(dtype, vocab, random=data is None)
    factory = load_factory(target)
    model = build_model(factory, split_target(target)[1])
    generator = make_generator(seed)
    inputs = load_inputs(input_shape, batch, data, generator, dtype, vocab)
    before = _diagnose(model, inputs, output, _labelled(progress, "as built"))
    after = None
    if init_spec is not None or reinit is not None:
        twin = copy.deepcopy(model)
        label = getattr(reinit, "label", "auto") if reinit is not None else str(init_spec)
        try:
            if reinit is not None:
                reinit(twin, inputs, generator)
            else:
                assert init_spec is not None  # reinit is None here, so the test above needed init_spec
                # apply_init's ``data`` is annotated Tensor, but it takes any Inputs (a tuple, a dict) for lsuv
                apply_init(twin, init_spec, generator=generator, data=cast(torch.Tensor, inputs))
        except InitlabError:
            raise
        except Exception as err:  # a data-dependent init (lsuv) runs the model on one tensor
            raise ValidationError(f"--init {label} could not run on input {describe(inputs)}: {error_line(err)}") from err
        after = _diagnose(twin, inputs, output, _labelled(progress, label))
    label = getattr(reinit, "label", "auto") if reinit is not None else (str(init_spec) if init_spec else None)
    return DoctorResult(target, batch_shape(inputs), before, after, label)
