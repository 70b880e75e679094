"""The layering rule import-linter cannot see: api calls the store only to read.

A route may read straight from the store (one query, no rule to apply); every write goes
through services, which own the realm lock, the CAS and the events (docs/architecture.md).
import-linter closes the write-only store modules to api; this test looks at each store
function an api module calls and fails if its source issues a write statement.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import charter.api

# SQLAlchemy's statement builders (`update(t)`, `t.insert()`), the seam's, and the row lock.
_WRITES = re.compile(
    r"(?<![.\w])(insert|update|delete)\(|\.(insert|update|delete)\(\)"
    r"|\b(upsert|insert_ignore|with_for_update)\("
)


def _store_calls(module: ModuleType) -> set[tuple[str, str]]:
    """(store module, function) for each `alias.function(...)` whose alias is a store module."""
    tree = ast.parse(inspect.getsource(module))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "charter.store":
            for name in node.names:
                aliases[name.asname or name.name] = f"charter.store.{name.name}"
    calls = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in aliases
        ):
            calls.add((aliases[node.func.value.id], node.func.attr))
    return calls


def _api_modules() -> list[ModuleType]:
    names = [m.name for m in pkgutil.iter_modules(charter.api.__path__, "charter.api.")]
    return [importlib.import_module(name) for name in names]


def test_api_calls_only_store_reads() -> None:
    seen = 0
    for module in _api_modules():
        for store_module, function in _store_calls(module):
            seen += 1
            source = inspect.getsource(getattr(importlib.import_module(store_module), function))
            assert not _WRITES.search(source), (
                f"{module.__name__} calls {store_module}.{function}, which writes: "
                "route it through a service"
            )
    assert seen > 10  # the check did look at the routes' reads


def test_the_check_sees_a_write() -> None:
    from charter.store import realms

    assert _WRITES.search(inspect.getsource(realms.create))
