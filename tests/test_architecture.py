"""The rules of the code's shape, read from the source with :mod:`ast` (nothing is imported or run).

* ``mmv/`` is a library: it never imports ``training``, ``app`` or ``streamlit``;
* no module of ``mmv/`` outside the toy-world package imports it (toy-world jobs pass what they need in);
* the import graph of ``mmv``, ``training`` and ``app`` has no cycle, counting imports inside functions and the
  package ``__init__`` modules;
* no file of ``mmv/``, ``training/``, ``app/``, ``benchmarks/`` or ``tests/`` is over 500 lines, and no function of the
  code (tests excepted) over 80.

``app/``'s own stricter rules (no Streamlit in ``app/logic/``, functions of at most 60 lines) are in
``tests/test_app_layout.py``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mmv", "training", "app")
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def _files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _module(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every absolute import of the file, at any depth, with ``from a import b`` also as ``a.b``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in _files(*PACKAGES)}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_the_library_imports_neither_the_jobs_nor_the_app_nor_streamlit():
    bad = {
        _module(p): sorted(m for m in _imports(p) if m.split(".")[0] in ("training", "app", "streamlit"))
        for p in _files("mmv")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_only_the_toy_world_package_imports_the_toy_world():
    bad = {
        name: sorted(m for m in deps if m.startswith("mmv.toyworld"))
        for name, deps in _graph().items()
        if name.startswith("mmv.") and not name.startswith("mmv.toyworld")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_file_and_function_sizes():
    long_files = {
        str(p.relative_to(ROOT)): n
        for p in _files(*PACKAGES, "benchmarks", "tests")
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert long_files == {}
    long_functions = defaultdict(list)
    for p in _files(*PACKAGES, "benchmarks"):
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                    long_functions[str(p.relative_to(ROOT))].append((node.name, n))
    assert dict(long_functions) == {}
