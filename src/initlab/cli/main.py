"""``initlab`` entry point. Exit codes: 0 success, 2 bad input (one line), 1 internal failure.

Adding a command: write ``cli/commands/NAME.py`` whose ``@app.command("NAME")`` (or
``app.add_typer``) registers it, and add ``"NAME"`` to :data:`COMMANDS` below. A command module
imports only typer, rich and the standard library at its top, and the library (torch) inside
the command's function: ``initlab --help``, ``initlab NAME --help`` and usage errors then answer
without importing torch (``tests/test_cli_fast.py`` checks every command).
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

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
        from .._version import __version__

        console.print(f"initlab {__version__}")
        raise typer.Exit(0)


def default_threads() -> int:
    """torch CPU threads for a command: ``$INITLAB_THREADS``, else one fewer than the usable cores.

    Leaving a core free matters on small machines: torch's OpenMP threads spin while they wait,
    so 2 threads on a 2-core machine where anything else runs can be 10-30x slower than 1
    (measured: a 90-run sweep took 313 s instead of 11 s). Small networks lose little with 1.
    """
    import os

    value = os.environ.get("INITLAB_THREADS", "").strip()
    if value:
        from .._validation import ValidationError

        if not value.isdigit() or int(value) < 1:
            raise ValidationError(f"INITLAB_THREADS must be an integer >= 1, got {value!r}")
        return int(value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit.",
    ),
    threads: int = typer.Option(
        None, "--threads", min=1,
        help="torch CPU threads for the command (default: $INITLAB_THREADS, else the cores minus one).",
    ),
) -> None:
    """initlab: reproduce, initialize, diagnose, sweep, predict and explore weight initialization."""
    # Applied when the command itself runs (see _with_threads), after its arguments parsed: so
    # `initlab CMD --help` and a usage error never import torch.
    _invocation["threads"] = threads


# The root options of the invocation in progress (one per process: the CLI is the top layer).
_invocation: dict[str, int | None] = {"threads": None}

# The command modules, in the order `initlab --help` lists them (cli/commands/NAME.py).
COMMANDS: tuple[str, ...] = (
    "inits", "reproduce", "train", "doctor", "sweep", "theory", "serve", "coord_check", "paper", "verify", "transfer",
)


def _with_threads(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` that first sets torch's CPU threads (``--threads``, else :func:`default_threads`)."""

    @functools.wraps(callback)  # typer reads the parameters through __wrapped__
    def run(*args: Any, **kwargs: Any) -> Any:
        import torch

        torch.set_num_threads(_invocation["threads"] or default_threads())
        return callback(*args, **kwargs)

    run._initlab_threads = True  # type: ignore[attr-defined]
    return run


def _wrap_commands(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        if info.callback is not None and not getattr(info.callback, "_initlab_threads", False):
            info.callback = _with_threads(info.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _wrap_commands(group.typer_instance)


def load_commands() -> typer.Typer:
    """Import every module of :data:`COMMANDS` (each registers itself on :data:`app`) and return the app."""
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__)
    _wrap_commands(app)
    return app


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    # escaped: messages quote user input and TOML tables such as "[grid]", which are not markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; library errors become a one-line message and exit code 2."""
    load_commands()
    try:
        app(args=argv, prog_name="initlab")  # standalone: click handles usage errors (exit 2)
    except InitlabError as err:
        fail(str(err))
        return 2
    except OSError as err:  # a path the user gave cannot be read or written
        fail(_os_message(err))
        return 2
    except MemoryError as err:
        fail(f"out of memory{': ' + str(err) if str(err) else ''}; use smaller sizes")
        return 2
    except RuntimeError as err:  # torch reports a failed allocation as a RuntimeError
        if not _is_out_of_memory(err):
            raise
        fail(f"out of memory: {str(err).splitlines()[0][:200]}; use smaller sizes (--hidden, --width, --batch, ...)")
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _os_message(err: OSError) -> str:
    """One line for an OSError on a path the user gave."""
    if not err.filename:
        return str(err)
    if isinstance(err, FileExistsError):  # mkdir(parents=True, exist_ok=True) met a file
        return f"{str(err.filename)!r} is a file, not a folder: choose another path"
    if isinstance(err, NotADirectoryError):
        return f"{str(err.filename)!r}: a parent of this path is a file, not a folder"
    return f"{err.strerror or err}: {err.filename}"


def _is_out_of_memory(err: RuntimeError) -> bool:
    text = str(err)
    return ("can't allocate memory" in text or "out of memory" in text.lower()
            or type(err).__name__ == "OutOfMemoryError")


def entry() -> None:
    sys.exit(main())
