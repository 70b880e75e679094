"""The suite's own layout: shared machinery lives in tests/support, conftest.py holds fixtures.

A conftest imported as a module is loaded twice (once by pytest, once by the import) and ties
tests to another directory's fixtures file; see tests/support/__init__.py for what is where.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
MODULES = sorted(TESTS.rglob("*.py"))
CONFTESTS = [path for path in MODULES if path.name == "conftest.py"]


def _name(path: Path) -> str:
    return str(path.relative_to(TESTS.parent))


def _imported(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_imports_a_conftest(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    offending = [name for name in _imported(tree) if "conftest" in name.split(".")]
    assert not offending, f"import from tests/support instead: {offending}"


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return ast.unparse(target) in {"pytest.fixture", "fixture"}


def _library(tree: ast.Module) -> list[str]:
    """Top-level classes and functions that are neither fixtures, hooks nor private."""
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and not node.name.startswith(("_", "pytest_"))
        and not any(_is_fixture(d) for d in node.decorator_list)
    ]


@pytest.mark.parametrize("path", CONFTESTS, ids=_name)
def test_conftest_modules_define_only_fixtures_and_hooks(path: Path) -> None:
    library = _library(ast.parse(path.read_text(), str(path)))
    assert not library, f"move these to tests/support: {library}"


def test_the_checks_see_what_they_forbid() -> None:
    conftest = """
import pytest
class Api: ...
def new_realm_id() -> str: ...
def _private() -> None: ...
def pytest_terminal_summary() -> None: ...
@pytest.fixture
def api() -> None: ...
@pytest.fixture(scope="session")
async def client() -> None: ...
"""
    assert _library(ast.parse(conftest)) == ["Api", "new_realm_id"]
    imported = _imported(ast.parse("import tests.live.conftest\nfrom tests.conftest import Api"))
    assert [name for name in imported if "conftest" in name.split(".")] == [
        "tests.live.conftest",
        "tests.conftest",
        "tests.conftest.Api",
    ]
