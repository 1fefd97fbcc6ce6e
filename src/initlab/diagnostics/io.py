"""Inputs and outputs of any kind: how ``diagnose`` and ``initlab doctor`` call a model and
pick the tensor they measure from what it returns.

Inputs: a tensor (``model(x)``), a tuple or list of them (``model(*x)``), or a dict of keyword
inputs (``model(**x)``, e.g. ``{"input_ids": ids, "attention_mask": mask}``). NumPy arrays are
converted keeping their kind: integer arrays become int64 (token ids stay ids), floats float32.

Outputs: a tensor as it is; a dict or a dataclass (Hugging Face ``ModelOutput`` is both) gives
its ``logits`` field, else its only / first tensor field; a tuple gives its first tensor. ``key``
(``--output NAME`` in the CLI, ``output=`` in Python) picks another field, or an index of a tuple.

Every failure is a one-line :class:`ValidationError` saying what the model got or returned and
what to try.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .._inputs import call_model as _call
from .._inputs import error_line
from .._rng import make_generator
from .._validation import DataError, ValidationError, check_choice, check_int, did_you_mean

__all__ = ["Inputs", "DTYPES", "as_inputs", "call_model", "pick_output", "check_dtype", "make_inputs",
           "with_dtype", "load_data", "describe", "batch_shape"]

Inputs = torch.Tensor | tuple[Any, ...] | dict[str, Any]
DTYPES = ("float", "long")  # --dtype: standard-normal floats, or integer ids in [0, vocab)
_OUTPUT_HINT = "pick one with --output FIELD (output='FIELD' in Python)"


def _tensor(value: Any) -> Any:
    """A NumPy array (or nested list of numbers) as a tensor of the same kind; anything else as is."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (np.ndarray, np.generic)) or (isinstance(value, (list, tuple)) and _numeric(value)):
        array = np.asarray(value)
        if array.dtype == np.bool_:
            return torch.as_tensor(array)
        if np.issubdtype(array.dtype, np.integer):
            return torch.as_tensor(array.astype(np.int64, copy=False))
        if np.issubdtype(array.dtype, np.number):
            return torch.as_tensor(array.astype(np.float32, copy=False))
        raise ValidationError(f"inputs must be numeric, got an array of {array.dtype}")
    return value


def _numeric(value: Sequence[Any]) -> bool:
    """True for a (nested) list of plain numbers, which is one array rather than several arguments."""
    if not len(value) or any(isinstance(v, (torch.Tensor, np.ndarray, Mapping)) for v in value):
        return False
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return False
    return array.dtype != object and np.issubdtype(array.dtype, np.number)


def as_inputs(inputs: Any) -> Inputs:
    """``inputs`` in one of the three forms :func:`call_model` accepts, arrays turned into tensors.

    A tensor or array -> a tensor; a nested list of numbers -> one tensor; a tuple/list of
    tensors or arrays -> a tuple (positional inputs); a mapping -> a dict (keyword inputs).
    """
    if isinstance(inputs, Mapping):
        if not inputs:
            raise ValidationError("inputs is an empty dict; give the forward's keyword inputs, like {'input_ids': ids}")
        return {str(k): _tensor(v) for k, v in inputs.items()}
    if isinstance(inputs, (list, tuple)) and not _numeric(inputs):
        if not inputs:
            raise ValidationError("inputs is an empty tuple; give a tensor, a tuple of tensors or a dict of them")
        return tuple(_tensor(v) for v in inputs)
    out = _tensor(inputs)
    if not isinstance(out, torch.Tensor):
        raise ValidationError(
            f"inputs must be a tensor, an array, a tuple of them or a dict of keyword inputs, got {type(inputs).__name__}")
    return out


def _describe_one(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} {tuple(value.shape)}"
    return type(value).__name__


def describe(inputs: Inputs) -> str:
    """A short text of what the model was given: ``int64 (4, 16)``, ``{input_ids: int64 (4, 16), ...}``."""
    if isinstance(inputs, Mapping):
        return "{" + ", ".join(f"{k}: {_describe_one(v)}" for k, v in inputs.items()) + "}"
    if isinstance(inputs, tuple):
        return "(" + ", ".join(_describe_one(v) for v in inputs) + ")"
    return _describe_one(inputs)


def _tensors(inputs: Inputs) -> list[torch.Tensor]:
    values = inputs.values() if isinstance(inputs, Mapping) else inputs if isinstance(inputs, tuple) else [inputs]
    return [v for v in values if isinstance(v, torch.Tensor)]


def batch_shape(inputs: Inputs) -> tuple[int, ...]:
    """The shape of the first tensor among ``inputs`` (the batch's shape in reports)."""
    tensors = _tensors(inputs)
    return tuple(tensors[0].shape) if tensors else ()


def _parameters(model: nn.Module) -> list[str]:
    """The names the model's forward takes (empty when it cannot be read)."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return []
    return [name for name, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _hint(err: BaseException, inputs: Inputs, model: nn.Module) -> str:
    """What to try, from the error the model raised (matched on torch's own messages)."""
    text = str(err)
    floats = [t for t in _tensors(inputs) if t.is_floating_point()]
    if "'indices'" in text or ("Long" in text and "Int" in text and floats):
        return ("the model starts with an embedding and needs integer token ids: "
                "try --dtype long --vocab N (N = the embedding's size), or give a LongTensor")
    if len(floats) < len(_tensors(inputs)) and not floats and ("same dtype" in text or "Long" in text):
        return ("the model takes float inputs: use --dtype float (it also casts --data arrays to float32), "
                "or give a float tensor")
    if "index out of range" in text:
        return "some input ids are not below the embedding's size: try a smaller --vocab"
    if isinstance(inputs, Mapping) and isinstance(err, (TypeError, ValueError)):
        names = _parameters(model)
        unknown = [k for k in inputs if names and k not in names]
        if unknown or "keyword" in text or "specify" in text:
            listed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            return (f"the inputs are passed as keyword arguments by name ({', '.join(inputs)}); name them as the "
                    f"forward's parameters" + (f" ({listed})" if names else ""))
    if "positional argument" in text:
        return "the inputs must match the forward's parameters (a tuple is passed as positional arguments)"
    if "shape" in text or "size" in text:
        return "check --input-shape (one sample's shape, without the batch dimension)"
    return ""


def _out_of_memory(err: BaseException) -> bool:
    text = str(err)
    return type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text.lower()


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """``model(x)`` for a tensor, ``model(*x)`` for a tuple, ``model(**x)`` for a dict.

    An exception raised inside the model becomes a one-line ValidationError naming what the
    model got (dtypes and shapes) and, where the message says, what to try.
    """
    def rejected(err: Exception) -> Exception | None:
        if isinstance(err, MemoryError) or _out_of_memory(err):  # a size problem, reported as such by the CLI
            return None
        hint = _hint(err, inputs, model)
        return ValidationError(f"the model rejected input {describe(inputs)}: {error_line(err)}"
                               + (f"; {hint}" if hint else ""))

    return _call(model, inputs, rejected)


def _fields(output: Any) -> list[tuple[str, Any]]:
    """``(name, value)`` of a dict or dataclass, in order (a ModelOutput lists only set fields)."""
    if isinstance(output, Mapping):
        return [(str(k), v) for k, v in output.items()]
    return [(f.name, getattr(output, f.name)) for f in dataclasses.fields(output)]


def _listing(fields: list[tuple[str, Any]]) -> str:
    tensors = [name for name, value in fields if isinstance(value, torch.Tensor)]
    return ", ".join(tensors) if tensors else "none"


def pick_output(output: Any, key: str | int | None = None) -> torch.Tensor:
    """The tensor to measure in what the model returned.

    A tensor as it is. A dict or dataclass (``ModelOutput``): field ``key``, else ``logits``,
    else its first tensor field (a plain dict must then hold one tensor only). A tuple or list:
    element ``key`` (an index; a name for a namedtuple), else its first tensor.
    """
    kind = type(output).__name__
    if isinstance(output, torch.Tensor):
        if key is not None:
            raise ValidationError(f"output {key!r} was given, but the model returns a plain tensor; drop --output")
        return output
    if isinstance(output, Mapping) or (dataclasses.is_dataclass(output) and not isinstance(output, type)):
        fields = _fields(output)
        names = [name for name, _ in fields]
        tensors = [(name, value) for name, value in fields if isinstance(value, torch.Tensor)]
        if key is not None:
            value = dict(fields).get(str(key))
            if not isinstance(value, torch.Tensor):
                what = "is not a tensor" if str(key) in names else "is not a field"
                raise ValidationError(f"output {str(key)!r} {what} of the model's {kind}"
                                      f"{did_you_mean(str(key), names)} (tensor fields: {_listing(fields)})")
            return value
        if isinstance(dict(fields).get("logits"), torch.Tensor):
            return cast(torch.Tensor, dict(fields)["logits"])
        if len(tensors) == 1 or (tensors and dataclasses.is_dataclass(output)):
            return tensors[0][1]
        if not tensors:
            raise ValidationError(f"the model returned a {kind} with no tensor field (fields: {', '.join(names) or 'none'})")
        raise ValidationError(f"the model returned a {kind} with several tensors ({_listing(fields)}) and no 'logits'; "
                              + _OUTPUT_HINT)
    if isinstance(output, (tuple, list)):
        if key is not None:
            return _tuple_item(output, key)
        for value in output:
            if isinstance(value, torch.Tensor):
                return value
        raise ValidationError(f"the model returned a {kind} of {', '.join(type(v).__name__ for v in output) or 'nothing'}"
                              f" with no tensor; {_OUTPUT_HINT}")
    raise ValidationError(f"the model must return a tensor, a tuple, a dict or a dataclass of tensors, got {kind}")


def _tuple_item(output: tuple[Any, ...] | list[Any], key: str | int) -> torch.Tensor:
    kind = type(output).__name__
    names = list(getattr(output, "_fields", ()))
    text = str(key)
    if text in names:
        value = getattr(output, text)
    else:
        try:
            index = int(text)
        except ValueError:
            named = f" (fields: {', '.join(names)})" if names else ""
            raise ValidationError(f"output {text!r}: the model returns a {kind}, so --output must be an index "
                                  f"in [0, {len(output) - 1}]{did_you_mean(text, names)}{named}") from None
        if not -len(output) <= index < len(output):
            raise ValidationError(f"output {index} is out of range: the model returns a {kind} of {len(output)}")
        value = output[index]
    if not isinstance(value, torch.Tensor):
        raise ValidationError(f"output {text!r} of the model's {kind} is a {type(value).__name__}, not a tensor; "
                              + _OUTPUT_HINT)
    return value


def check_dtype(dtype: str | None, vocab: int | None = None, random: bool = True) -> str | None:
    """``dtype`` if it is None (random inputs: float; data: kept as it is) or one of
    :data:`DTYPES`, and ``vocab`` fits it (random long ids need a vocabulary size; floats take
    none); checked before any work."""
    if dtype is not None:
        dtype = check_choice("dtype", dtype, DTYPES)
    if dtype == "long" and random and vocab is None:
        raise ValidationError("--dtype long needs --vocab N: the number of token ids the model's embedding accepts")
    if dtype != "long" and vocab is not None:
        raise ValidationError("--vocab is only used with --dtype long (integer token ids)")
    if vocab is not None:
        check_int("vocab", vocab, 1)
    return dtype


def make_inputs(shape: Sequence[int], dtype: str = "float", vocab: int | None = None,
                generator: int | torch.Generator | None = 0) -> torch.Tensor:
    """A random batch of ``shape`` (batch dimension first): standard normal for ``"float"``,
    integer ids uniform in ``[0, vocab)`` (int64) for ``"long"``."""
    dtype = cast(str, check_dtype(dtype, vocab))  # a str in, a str out
    gen = make_generator(generator)
    if dtype == "long":
        return torch.randint(0, int(cast(int, vocab)), tuple(shape), generator=gen)  # check_dtype: long needs vocab
    return torch.randn(tuple(shape), generator=gen)


def with_dtype(inputs: Inputs, dtype: str) -> Inputs:
    """``inputs`` cast to ``dtype``: ``"float"`` makes every tensor float32; ``"long"`` makes
    floating tensors int64 when their values are whole numbers (else a DataError) and leaves
    integer and boolean tensors as they are."""
    dtype = check_choice("dtype", dtype, DTYPES)

    def cast(name: str, value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        if dtype == "float":
            return value.float()
        if not value.is_floating_point():
            return value
        if not bool((value == value.round()).all()):
            raise DataError(f"--dtype long: the data{name} holds values that are not whole numbers, so they are not token ids")
        return value.long()

    if isinstance(inputs, Mapping):
        return {k: cast(f" [{k}]", v) for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(cast(f" [{i}]", v) for i, v in enumerate(inputs))
    out: Inputs = cast("", inputs)  # (the local cast above)
    return out


def _array(name: str, array: np.ndarray, batch: int) -> torch.Tensor:
    if array.ndim < 1 or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"data {name} must be a numeric array of shape (rows, ...), got {array.dtype} {array.shape}")
    tensor: torch.Tensor = _tensor(np.ascontiguousarray(array[:batch]))
    return tensor


def load_data(path: str | Path, batch: int) -> Inputs:
    """The first ``batch`` rows of a ``.npy`` array (integer arrays stay int64: token ids), or of
    every array of a ``.npz`` file: one array -> a tensor, several -> a dict of keyword inputs
    named as in the file (e.g. ``input_ids`` and ``attention_mask``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file '{path}' not found")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(f"cannot read '{path}' as a .npy or .npz array: {error_line(err)}") from err
    if isinstance(loaded, np.ndarray):
        if loaded.ndim < 2:
            raise DataError(f"data '{path}' must be a numeric array of shape (rows, ...), got {loaded.dtype} {loaded.shape}")
        return _array(f"'{path}'", loaded, batch)
    with loaded:
        arrays = {name: loaded[name] for name in loaded.files}
    if not arrays:
        raise DataError(f"data '{path}' holds no arrays")
    tensors = {name: _array(f"'{path}' [{name}]", a, batch) for name, a in arrays.items()}
    rows = {name: t.shape[0] for name, t in tensors.items()}
    if len(set(rows.values())) > 1:
        raise DataError(f"the arrays of '{path}' have different numbers of rows: {rows}")
    return next(iter(tensors.values())) if len(tensors) == 1 else tensors
