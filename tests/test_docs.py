"""The docs stay true: their Python runs, their marked commands run, and every `initlab` command
they show exists.

What runs:
- every ```python block of a page, in order, in one namespace, in an empty folder (a block right
  after `<!-- docs-test: skip -->` is left out);
- every `initlab ...` line of a ```bash block right after `<!-- docs-test: run -->`, in an empty
  folder that sees the repository's `examples/`;
- for every other `initlab ...` line of the docs and the README: its subcommand answers `--help`.
Pages whose Python takes more than a few seconds are marked slow (`SLOW_PAGES`).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

from initlab.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))
# measured on 2 busy cores, 1 torch thread: diagnose 31 s, autoinit 15-83 s, coord-check 14 s,
# sweeps-theory 8-12 s, api 1-36 s (it trains an MLP); the rest under 4 s
SLOW_PAGES = {"tutorials/autoinit.md", "tutorials/diagnose.md", "how-to/coord-check.md", "tutorials/sweeps-theory.md",
              "reference/api.md"}

_BLOCK = re.compile(r"(<!-- docs-test: (\w+) -->\s*\n)?```(\w+)\n(.*?)```", re.S)


def _blocks(path: Path, language: str) -> list[tuple[str | None, str]]:
    """(marker or None, code) of every ```language block of ``path``."""
    return [(m.group(2), m.group(4)) for m in _BLOCK.finditer(path.read_text()) if m.group(3) == language]


def _initlab_lines(code: str) -> list[list[str]]:
    """The `initlab ...` lines of a shell block, split like a shell would (comments dropped)."""
    found = []
    for line in code.splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith("initlab "):
            found.append(shlex.split(line)[1:])
    return found


def _page_id(path: Path) -> str:
    return path.relative_to(ROOT / "docs").as_posix() if path != README else "README.md"


def _python_cases() -> list:
    cases = []
    for path in [README, *PAGES]:
        code = [c for marker, c in _blocks(path, "python") if marker != "skip"]
        if code:
            slow = _page_id(path) in SLOW_PAGES
            cases.append(pytest.param(path, code, id=_page_id(path), marks=[pytest.mark.slow] if slow else []))
    return cases


def _shown_commands() -> list[list[str]]:
    return [argv for path in [README, *PAGES] for _, code in _blocks(path, "bash") for argv in _initlab_lines(code)]


def _run_commands() -> list:
    return [pytest.param(argv, id=f"{_page_id(path)}: {' '.join(argv)}"[:80])
            for path in PAGES for marker, code in _blocks(path, "bash") if marker == "run"
            for argv in _initlab_lines(code)]


@pytest.fixture
def one_thread():
    """Docs examples train small nets: one torch thread, as the CLI uses on a 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_docs_have_pages_and_code():
    assert len(PAGES) >= 15
    assert len(_python_cases()) >= 8 and len(_shown_commands()) >= 40 and len(_run_commands()) >= 2


@pytest.mark.parametrize(("path", "code"), _python_cases())
def test_python_blocks_run(path, code, tmp_path, monkeypatch, one_thread):
    """A page's ```python blocks, in order, in one namespace, run in an empty folder."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs"}
    exec(compile("\n".join(code), str(path), "exec"), namespace)  # noqa: S102  (our own docs)
    if _page_id(path) == "tutorials/sweeps-theory.md":  # its sweep: 12 runs into demo.db, read back
        assert (tmp_path / "demo.db").is_file() and len(namespace["df"]) == 12


@pytest.mark.parametrize("argv", _run_commands())
def test_marked_commands_run(argv, tmp_path, monkeypatch, capsys, one_thread):
    """A command under `<!-- docs-test: run -->` runs as shown and exits 0."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0, capsys.readouterr().err


@pytest.mark.parametrize("argv", _shown_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_shown_command_parses(argv):
    """Each command shown, with the same subcommand path, answers --help with exit 0."""
    path = [a for a in argv if not a.startswith("-")][:2]
    for depth in (2, 1):
        code = main([*path[:depth], "--help"])
        if code == 0:
            break
    assert code == 0, argv


def _hooks():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks" / "generated.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_cli_reference_lists_every_command():
    """The CLI page is generated from the app: every command and subcommand has its section."""
    import typer.main

    from initlab.cli.main import app, load_commands

    load_commands()
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="initlab")
    text = _hooks().cli_reference()
    for name in root.list_commands(ctx):
        assert f"## `initlab {name}`" in text
    assert "## `initlab theory point`" in text and "`--input-shape" in text


def test_generated_catalog_has_every_scheme():
    from initlab import initializers

    rows = _hooks().catalog_table().splitlines()[2:]
    assert [row.split("|")[1].strip().strip("`") for row in rows] == [s.name for s in initializers.catalog()]
