"""``initlab.lab()``: the browser lab from a notebook, in a background thread, shown inline."""

from __future__ import annotations

import contextlib
import html
from typing import Any

from . import background, create_app

__all__ = ["LabServer", "lab"]


class LabServer:
    """A running lab: ``url``, ``stop()``; a notebook shows it as an inline frame.

    Also a context manager: ``with initlab.lab() as lab: ...`` stops it at the end of the block.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, height: int = 900,
                 min_run_seconds: float | None = None) -> None:
        app = create_app() if min_run_seconds is None else create_app(min_run_seconds=min_run_seconds)
        self.height = height
        self._stack: contextlib.ExitStack[bool | None] | None = contextlib.ExitStack()
        self.url: str = self._stack.enter_context(background(app, host, port))

    @property
    def running(self) -> bool:
        return self._stack is not None

    def stop(self) -> None:
        """Stop the server (a second call does nothing)."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __enter__(self) -> LabServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LabServer(url={self.url!r}, running={self.running})"

    def _repr_html_(self) -> str:
        if not self.running:
            return f"<p>initlab lab at {html.escape(self.url)}: stopped</p>"
        url = html.escape(self.url, quote=True)
        return (f'<iframe src="{url}/" width="100%" height="{int(self.height)}" style="border:1px solid #ccc" '
                f'title="initlab lab"></iframe><p style="font-size:12px">initlab lab at '
                f'<a href="{url}/" target="_blank">{url}</a>; <code>lab.stop()</code> stops it.</p>')


def lab(port: int = 0, host: str = "127.0.0.1", height: int = 900) -> LabServer:
    """Start the lab on a free local port (or ``port``) in a background thread and return it;
    as a notebook cell's last value it displays inline. ``lab.stop()`` stops it."""
    return LabServer(host, port, height)
