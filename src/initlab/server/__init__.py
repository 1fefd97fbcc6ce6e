"""``initlab serve``: the browser lab (a FastAPI app and one static page).

>>> from initlab.server import create_app
>>> app = create_app()          # an ASGI app; ``serve()`` runs it with uvicorn
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .app import create_app
from .limits import LIMITS, LOOPBACK_HOSTS, Limits

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app", "serve", "background", "LIMITS", "Limits"]


def serve(host: str = "127.0.0.1", port: int = 8000, allowed_hosts: list[str] | None = None) -> None:
    """Run the lab with uvicorn until interrupted (loopback only by default).

    The lab answers Host headers naming the loopback names, ``host`` itself and ``allowed_hosts``
    (``["*"]``: any); others get a 400, so a web page cannot reach it by DNS rebinding.
    """
    import torch
    import uvicorn

    # Small MLPs train several times faster on one thread each than on a shared pool.
    check_listen(host, port)
    torch.set_num_threads(1)
    hosts = [*LOOPBACK_HOSTS, *([host] if host not in ("0.0.0.0", "::") else []), *(allowed_hosts or [])]
    uvicorn.run(create_app(allowed_hosts=hosts), host=host, port=port, log_level="info")


def check_listen(host: str, port: int) -> None:
    """Raise a one-line ValidationError if ``host:port`` cannot be listened on (bad host, port in use).

    uvicorn would log a multi-line error and exit 3; this tries the bind first, as uvicorn will.
    """
    from .._validation import ValidationError, check_int

    check_int("port", port, 0, 65535)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise ValidationError(f"host {host!r} is not an address or a name that resolves ({err})") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as err:
            raise ValidationError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None


@contextlib.contextmanager
def background(app: FastAPI | None = None, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0) -> Iterator[str]:
    """Run the lab in a background thread (for notebooks and tests); yields its base URL.

    ``port=0`` picks a free port. The server stops when the block ends.
    """
    import uvicorn

    if port == 0:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app or create_app(), host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="initlab-lab", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the lab did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
