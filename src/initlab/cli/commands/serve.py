"""``initlab serve``: the browser lab."""

from __future__ import annotations

import typer

from ..main import app, console


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
) -> None:
    """The browser lab: pick an initializer, train live, compare 2-4 side by side.

    Example: initlab serve --port 8000   (then open http://127.0.0.1:8000)
    """
    from ...server import serve

    console.print(f"initlab lab on [bold]http://{host}:{port}[/]  (Ctrl+C to stop)")
    serve(host, port)
