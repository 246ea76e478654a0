"""The app's folders say what their modules are: ``app/logic/`` never imports Streamlit, pages and widgets do.

Checked on the source with :mod:`ast` (nothing is imported), so a ``streamlit`` import hidden inside a function
counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"


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
