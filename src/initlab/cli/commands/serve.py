"""``initlab serve``: the browser lab."""

from __future__ import annotations

import typer

from ..main import app, console


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    allowed_hosts: str = typer.Option(
        "", "--allowed-hosts",
        help="Comma-separated Host names the lab answers besides the loopback names and --host "
             "(any other Host header gets a 400: DNS rebinding). '*' answers any (not advised)."),
) -> None:
    """The browser lab: pick an initializer, train live, compare 2-4 side by side.

    Example: initlab serve --port 8000   (then open http://127.0.0.1:8000)
    Example: initlab serve --host 0.0.0.0 --allowed-hosts lab.example.org
    """
    from ... import server

    names = [h.strip() for h in allowed_hosts.split(",") if h.strip()] or None
    console.print(f"initlab lab on [bold]http://{host}:{port}[/]  (Ctrl+C to stop)")
    server.serve(host, port, allowed_hosts=names)
