"""``initlab`` entry point. Exit codes: 0 success, 2 bad input (one line), 1 internal failure."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from .._validation import InitlabError

app = typer.Typer(
    name="initlab",
    help="A laboratory for neural-network weight initialization.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"initlab {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """initlab: reproduce, initialize, diagnose, sweep, predict and explore weight initialization."""


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; library errors become a one-line message and exit code 2."""
    from . import commands  # noqa: F401  (registers the subcommands)

    try:
        app(args=argv, prog_name="initlab")  # standalone: click handles usage errors (exit 2)
    except InitlabError as err:
        fail(str(err))
        return 2
    except OSError as err:  # a path the user gave cannot be read or written
        fail(f"{err.strerror or err}: {err.filename}" if err.filename else str(err))
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def entry() -> None:
    sys.exit(main())
