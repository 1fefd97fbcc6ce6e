"""A snappy CLI: help and usage errors answer without importing torch (issue 22)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("torch", "numpy", "pandas", "matplotlib")


def _imported(*argv: str) -> tuple[int, set[str], str]:
    """Exit code, the top-level modules imported (from -X importtime), stderr of `python -m initlab ARGV`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "initlab", *argv],
                          capture_output=True, text=True, env=env, timeout=120)
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc.returncode, modules, proc.stderr


def _commands() -> list[list[str]]:
    import typer.main

    from initlab.cli.main import app, load_commands

    load_commands()
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="initlab")
    found = []
    for name in root.list_commands(ctx):
        found.append([name])
        cmd = root.get_command(ctx, name)
        if hasattr(cmd, "list_commands"):
            found += [[name, sub] for sub in cmd.list_commands(typer.Context(cmd, info_name=name, parent=ctx))]
    return found


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["no-such-command"], ["train", "--no-such-flag"],
                                  ["train", "--epochs", "many"]], ids=" ".join)
def test_help_version_and_usage_errors_import_no_torch(argv):
    code, modules, stderr = _imported(*argv)
    assert code == (0 if argv[0].startswith("--") else 2), stderr[-500:]
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


@pytest.mark.slow  # one fresh process per command
def test_every_command_help_imports_no_torch():
    commands = _commands()
    assert {"train", "sweep", "doctor", "inits", "theory"} <= {c[0] for c in commands}
    for argv in commands:
        code, modules, stderr = _imported(*argv, "--help")
        assert code == 0, (argv, stderr[-500:])
        assert not modules & set(HEAVY), (argv, sorted(modules & set(HEAVY)))


def test_import_initlab_is_light_and_the_api_loads_on_use():
    code = ("import sys, initlab; assert 'torch' not in sys.modules; "
            "assert callable(initlab.diagnose) and callable(initlab.apply_init) and callable(initlab.autoinit); "
            "assert 'torch' in sys.modules; print(initlab.__version__)")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-800:]
    from initlab._version import __version__

    assert out.stdout.strip() == __version__


def test_help_defaults_equal_the_library_constants():
    from initlab.cli import defaults
    from initlab.experiments.executors import EXECUTORS
    from initlab.experiments.reproduce import CLASSIC_NAMES, DEFAULT_OUT
    from initlab.experiments.store import DEFAULT_STORE
    from initlab.experiments.train import DEFAULT_TRAIN_OUT

    assert defaults.REPRODUCE_OUT == DEFAULT_OUT and defaults.TRAIN_OUT == DEFAULT_TRAIN_OUT
    assert defaults.STORE == DEFAULT_STORE and tuple(defaults.CLASSIC_NAMES) == tuple(CLASSIC_NAMES)
    assert tuple(defaults.EXECUTORS) == tuple(EXECUTORS)


def test_threads_option_still_sets_torch_threads(capsys):
    """--threads is applied when the command runs (after its arguments parsed)."""
    import torch

    from initlab.cli import main

    before = torch.get_num_threads()
    try:
        assert main(["--threads", "1", "theory", "point", "--activation", "relu", "--sigma-w2", "2", "--json"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_one_version_source():
    """The version is written once: pyproject reads it from _version.py (hatch dynamic version)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    pyproject = tomllib.loads((SRC.parent / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "src/initlab/_version.py"
