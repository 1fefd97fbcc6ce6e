"""Honest package boundaries (issue 18.6), read from the source: no private-name imports across
modules, no module importing the package root, no class over 400 lines, and ``initlab.autoinit``,
``initlab.verify`` and ``initlab.transfer`` plain functions whatever was imported first."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import initlab

PACKAGE = Path(initlab.__file__).parent
KNOWN: set[tuple[str, str]] = set()  # none left; a new one is made public where it is defined


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_imports_another_modules_private_names():
    modules = {p.stem for p in PACKAGE.rglob("_*.py")}  # a private module (``from .. import _html``) is not a name
    found = set()
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__") and alias.name not in modules:
                        found.add((path.relative_to(PACKAGE).as_posix(), alias.name))
    assert found <= KNOWN, sorted(found - KNOWN)


def test_no_module_imports_the_package_root():
    """``from .. import x`` where ``..`` is initlab itself (or ``import initlab``) runs the package's re-exports
    first and ties the module to the package's name; a submodule (``from .. import datasets``) is fine."""
    found = []
    for path in _modules():
        depth = len(path.relative_to(PACKAGE).parts)  # 1 for initlab/x.py
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "initlab" for a in node.names):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: import initlab")
            if isinstance(node, ast.ImportFrom):
                root = (node.level == depth and node.module is None) or (node.level == 0 and node.module == "initlab")
                names = [a.name for a in node.names if not (PACKAGE / a.name).is_dir()
                         and not (PACKAGE / f"{a.name}.py").exists()]
                if root and names:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: from the root import {', '.join(names)}")
    assert not found, found


def test_no_class_over_400_lines():
    long = [f"{path.relative_to(PACKAGE)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in _modules() for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 400]
    assert not long, long


@pytest.mark.parametrize("name, submodule", [("autoinit", "stability"), ("verify", "stats"), ("transfer", "analysis")])
def test_public_functions_stay_functions_whatever_is_imported_first(name, submodule):
    """A fresh process imports the subpackage's module first, then calls the name on the package."""
    code = (f"import types, sys; import initlab.{name}.{submodule}; from initlab.{name} import {name} as f; "
            f"import initlab; assert isinstance(initlab.{name}, types.FunctionType) and initlab.{name} is f, "
            f"initlab.{name}; assert type(sys.modules['initlab.{name}']) is types.ModuleType")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-800:]
