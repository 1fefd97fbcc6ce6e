"""The function modes that see every torch call of a traced forward pass, and their one global patch.

:class:`FunctionalMode` observes each call after it ran (the tracer); :class:`InterceptMode` hands
each call to a consumer that runs it (the analytic autoinit, which re-draws a weight before the op
that reads it); :func:`module_stack` keeps the modules in progress.

``F.multi_head_attention_forward`` (and other composite functions) first ask
``F.has_torch_function`` whether a mode wants the call; inside the mode's handler that question
must be answered "no" for the composite to run with the mode active (so the projections it applies
with ``F.linear`` are seen), else the call comes straight back. The answer is changed with
:func:`composite_bypass`: a context manager that installs a wrapper on first use, answers "no" only
in the thread that entered it, and restores torch's own function when the last user leaves. Two
threads tracing at once each see their own answer; a thread not tracing always gets torch's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

__all__ = ["composite_bypass", "FunctionalMode", "InterceptMode", "module_stack", "COMPOSITES"]

COMPOSITES = {F.multi_head_attention_forward}

_lock = threading.Lock()
_local = threading.local()
_users = 0
_original: Callable[..., bool] | None = None


def _has_torch_function(*args: Any, **kwargs: Any) -> bool:
    if getattr(_local, "bypass", 0):
        return False
    assert _original is not None
    return _original(*args, **kwargs)


@contextlib.contextmanager
def composite_bypass() -> Iterator[None]:
    """In this thread only, ``F.has_torch_function`` answers False until the block exits."""
    global _users, _original
    with _lock:
        if _users == 0:
            # F re-exports has_torch_function from torch.overrides without listing it in its stubs
            _original = F.has_torch_function  # type: ignore[attr-defined]
            F.has_torch_function = _has_torch_function  # type: ignore[attr-defined]
        _users += 1
    _local.bypass = getattr(_local, "bypass", 0) + 1
    try:
        yield
    finally:
        _local.bypass -= 1
        with _lock:
            _users -= 1
            if _users == 0:
                F.has_torch_function = _original  # type: ignore[attr-defined]  # see above
                _original = None


class FunctionalMode(TorchFunctionMode):
    """Runs every torch call, then hands ``(func, args, kwargs, out)`` to ``observe`` while
    ``active()``; a composite function runs with the mode active inside it."""

    def __init__(self, observe: Callable[[Any, tuple[Any, ...], dict[str, Any], Any], None],
                 active: Callable[[], bool]) -> None:
        super().__init__()
        self.observe, self.active = observe, active

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        on = self.active()
        if on and func in COMPOSITES:
            with composite_bypass(), self:
                out = func(*args, **kwargs)
        else:
            out = func(*args, **kwargs)
        if on:
            self.observe(func, args, kwargs, out)
        return out


class InterceptMode(TorchFunctionMode):
    """Hands every torch call to ``handle(func, args, kwargs)``, which runs it (possibly after changing
    a weight it reads, as the analytic autoinit does) and returns its result."""

    def __init__(self, handle: Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]) -> None:
        super().__init__()
        self.handle = handle

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        return self.handle(func, args, kwargs or {})


@contextlib.contextmanager
def module_stack(model: nn.Module, stack: list[tuple[str, nn.Module]]) -> Iterator[list[tuple[str, nn.Module]]]:
    """Keep ``stack`` equal to the (name, module) calls in progress; hooks always removed."""
    handles: list[RemovableHandle] = []

    def pre(name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            stack.append((name, mod))
        return hook

    def post(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if stack and stack[-1][1] is mod:
            stack.pop()

    try:
        for name, mod in model.named_modules():
            handles.append(mod.register_forward_pre_hook(pre(name)))
            handles.append(mod.register_forward_hook(post, always_call=True))
        yield stack
    finally:
        for h in handles:
            h.remove()
