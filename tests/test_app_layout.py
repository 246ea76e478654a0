"""The app's folders say what their modules are: ``app/logic/`` never imports Streamlit, pages and widgets do.

Checked on the source with :mod:`ast` (nothing is imported), so a ``streamlit`` import hidden inside a function
counts too. Also the size rules of ``app/``: no file above 500 lines, no function above 60.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60


def _modules(folder: str) -> list[Path]:
    return sorted(p for p in (APP / folder).rglob("*.py") if p.name != "__init__.py")


def _imported(path: Path) -> set[str]:
    """Top-level package of every ``import`` / ``from ... import`` in the file, at any depth."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_folders_exist():
    for folder in ("logic", "views", "widgets"):
        assert _modules(folder), f"app/{folder}/ holds no module"
    assert not (APP / "pages").exists(), "app/pages/ would be run as a legacy multipage app: see app/__init__.py"


@pytest.mark.parametrize("path", _modules("logic"), ids=lambda p: p.name)
def test_logic_never_imports_streamlit(path):
    assert "streamlit" not in _imported(path), f"{path.relative_to(APP.parent)} imports streamlit: move it to widgets/"


@pytest.mark.parametrize("path", _modules("views") + _modules("widgets"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pages_and_widgets_are_streamlit(path):
    assert "streamlit" in _imported(path), f"{path.relative_to(APP.parent)} does not use streamlit: move it to logic/"


def test_sizes():
    too_long = []
    for path in sorted(APP.rglob("*.py")):
        text, name = path.read_text(), path.relative_to(APP.parent)
        if len(text.splitlines()) > MAX_FILE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - min([d.lineno for d in node.decorator_list] + [node.lineno]) + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.name}: {lines} lines (decorators and docstring included)")
    assert not too_long, too_long
