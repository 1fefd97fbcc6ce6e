"""The package's layers: no subpackage imports one that imports it back (no cycles), anywhere
in a file (function-level imports included)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import initlab

ROOT = Path(initlab.__file__).parent


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if len(parts) == 1:
            continue  # top-level modules (__init__, _validation, activations, results) are not layers
        pkg = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(parts[:-1])[: len(parts) - node.level]
                target = base + [m for m in (node.module or "").split(".") if m]
                names = [target[0]] if target else [a.name for a in node.names]
                edges[pkg].update(n for n in names if n != pkg and (ROOT / n).is_dir())
    return edges


def test_no_two_subpackages_import_each_other():
    edges = _edges()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for nxt in edges.get(node, ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    cycles = sorted((a, b) for a in edges for b in edges[a] if reaches(b, a))
    assert cycles == []
    assert "theory" not in edges["initializers"] and "models" not in edges["initializers"]
    assert "report" not in edges["diagnostics"] and "experiments" not in edges["training"]
