"""The README stays true: its Python runs, and every `initlab` command it shows exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from initlab.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _commands() -> list[list[str]]:
    """Every `initlab ...` line inside the README's ```bash blocks, split like a shell would."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("initlab "):
                found.append(shlex.split(line)[1:])
    return found


def test_readme_python_runs(tmp_path, monkeypatch):
    """Every ```python block, in order, in one namespace, run in an empty folder."""
    code = "\n".join(re.findall(r"```python\n(.*?)```", README, re.S))
    assert "apply_init" in code and "run_sweep" in code
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  (our own README)
    assert (tmp_path / "demo.db").is_file() and len(namespace["df"]) == 12


def test_readme_shows_commands():
    assert len(_commands()) >= 2


@pytest.mark.parametrize("argv", _commands(), ids=lambda a: " ".join(a)[:60])
def test_every_readme_command_parses(argv, capsys):
    """Each command shown, with the same subcommand path, answers --help with exit 0."""
    path = [a for a in argv if not a.startswith("-")][:2]
    for depth in (2, 1):
        code = main([*path[:depth], "--help"])
        if code == 0:
            break
    assert code == 0, argv
