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

from .app import create_app
from .limits import LIMITS, Limits

__all__ = ["create_app", "serve", "background", "LIMITS", "Limits"]


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the lab with uvicorn until interrupted (loopback only by default)."""
    import torch
    import uvicorn

    # Small MLPs train several times faster on one thread each than on a shared pool.
    torch.set_num_threads(1)
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


@contextlib.contextmanager
def background(app=None, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0) -> Iterator[str]:
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
