"""docs/configuration.md is the one list of CHARTER_* variables, and it is exact.

The server table must name exactly the variables `Settings.from_env` reads (found in its source
with ast, so a new setting without a row fails here); the client table exactly those the client
and the CLI read; the development table covers what scripts/ and the tests read. No other page
keeps a table of its own.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

from charter.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"
_NAME = re.compile(r"CHARTER_[A-Z0-9_]+")
_ROW = re.compile(r"^\|\s*`(CHARTER_[A-Z0-9_]+)`\s*\|", re.MULTILINE)


def table(section: str) -> list[str]:
    """The variables in the first column of the table under `## section`."""
    text = PAGE.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return _ROW.findall(text[start : end if end != -1 else None])


def read_by_from_env() -> set[str]:
    """Every CHARTER_* string in the source of `Settings.from_env`, the helpers it calls too."""
    source = textwrap.dedent(inspect.getsource(Settings.from_env))
    names = set(_literals(ast.parse(source)))
    module = ast.parse(inspect.getsource(inspect.getmodule(Settings)))  # type: ignore[arg-type]
    called = {
        node.func.id
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name in called:
            names |= set(_literals(node))
    return names


def _literals(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += _NAME.findall(node.value)
    return found


def names_in(*paths: Path) -> set[str]:
    found: set[str] = set()
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            if file.suffix in ("", ".py", ".sh", ".toml", ".ini", ".yml", ".yaml"):
                found |= set(_NAME.findall(file.read_text(errors="replace")))
    return found


def test_server_table_is_exactly_what_from_env_reads() -> None:
    rows = table("Server")
    assert len(rows) == len(set(rows)), "a variable listed twice"
    read = read_by_from_env()
    assert read, "found no variable in Settings.from_env: the test no longer sees them"
    assert sorted(read - set(rows)) == [], "read by Settings.from_env but not in the docs"
    assert sorted(set(rows) - read) == [], "in the docs but not read by Settings.from_env"


def test_from_env_reads_each_variable_in_the_table() -> None:
    """Behaviour agrees with the source scan: setting a listed variable changes a setting."""
    defaults = Settings.from_env({})
    samples = {
        "CHARTER_ALLOW_RLS_BYPASS": "1",
        "CHARTER_HEARTBEAT_SECONDS": "7",
        "CHARTER_MAX_STREAMS_PER_KEY": "7",
        "CHARTER_METRICS_PUBLIC": "1",
        "CHARTER_WEBHOOK_ALLOW_PRIVATE": "1",
        "CHARTER_LOG_FORMAT": "json",
        "CHARTER_REDIS_PREFIX": "other",
        "CHARTER_CORS_ORIGINS": "https://ops.example.com",
        "CHARTER_READ_REPLICA_URLS": "postgresql+asyncpg://y/z",
    }
    for name in table("Server"):
        value = samples.get(name, "7" if "URL" not in name and "KEY" not in name else "x://y")
        assert Settings.from_env({name: value}) != defaults, f"{name} changes nothing"


def test_client_table_is_exactly_what_the_client_and_cli_read() -> None:
    src = ROOT / "src" / "charter"
    read = names_in(src / "client", src / "cli", src / "__main__.py")
    assert read, "found no variable in the client or CLI"
    assert sorted(read ^ set(table("Client and CLI"))) == []


def test_development_table_covers_the_scripts_and_tests() -> None:
    documented = set(table("Server")) | set(table("Client and CLI"))
    development = set(table("Development"))
    used = names_in(ROOT / "scripts", ROOT / ".ci", ROOT / "tests", ROOT / "benchmarks")
    assert sorted(used - documented - development) == [], "used but in no table"
    assert sorted(development - used) == [], "in the development table but used nowhere"


def test_no_other_page_keeps_its_own_table() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    for page in pages:
        if page != PAGE:
            rows = _ROW.findall(page.read_text())
            assert rows == [], f"{page.relative_to(ROOT)} lists {rows}: link to configuration.md"
