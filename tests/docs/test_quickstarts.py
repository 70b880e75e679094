"""The quickstarts, run as written: their marked blocks, in order, against a live server.

One `charter serve` (SQLite, a temp folder, no key: it prints the admin key, which the pages
then use as $CHARTER_KEY) serves every page; each page runs in a fresh bash from the checkout,
the pages in the order a newcomer reads them, each in a realm of its own. A command that fails
fails the test; so does output a page shows that the command does not print.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs._runbook import blocks, missing_lines, run_page, script
from tests.support.sqlite_server import SqliteServer, clean_env, sqlite_server

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", "docs/quickstart.md", "docs/quickstart-operators.md"]
PAGES += ["docs/quickstart-agents.md"]
PAGE_SECONDS = 240
END = "@@charter-block-end"
# What `charter edit` types in the operator quickstart.
EDIT_LINE = "Keep the endpoints behind the flag until the perf review passes."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteServer]:
    with sqlite_server(tmp_path_factory.mktemp("server")) as live:
        yield live


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$HOME for the pages, with an editor that adds one line to the file it is given."""
    home = tmp_path_factory.mktemp("home")
    editor = home / "editor"
    editor.write_text(f'#!/bin/sh\nprintf "%s\\n" "{EDIT_LINE}" >> "$1"\n')
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    return home


def test_every_page_has_something_to_run() -> None:
    for page in PAGES:
        assert blocks(ROOT / page), f"{page} has no block marked <!-- run -->"


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_as_written(page: str, server: SqliteServer, home: Path) -> None:
    env = clean_env() | {
        "HOME": str(home),
        "CHARTER_URL": server.url,
        "CHARTER_KEY": server.key,
        "VISUAL": str(home / "editor"),
        "LANG": "C.UTF-8",
        "GIT_AUTHOR_NAME": "Quick Start",
        "GIT_AUTHOR_EMAIL": "quickstart@example.invalid",
        "GIT_COMMITTER_NAME": "Quick Start",
        "GIT_COMMITTER_EMAIL": "quickstart@example.invalid",
    }
    failure = run_page(ROOT / page, cwd=ROOT, env=env, timeout=PAGE_SECONDS)
    assert failure is None, failure


def test_pages_use_realms_of_their_own() -> None:
    """Followed in order, no page creates a realm an earlier one made."""
    seen: dict[str, str] = {}
    for page in PAGES:
        text = (ROOT / page).read_text().replace("\\\n", " ")  # join continued lines
        realms = _created_realms(text)
        assert realms, f"{page} creates no realm this test can see"
        for realm in realms:
            assert realm not in seen, f"{page} and {seen[realm]} both create realm {realm!r}"
            seen[realm] = page


def _created_realms(text: str) -> set[str]:
    found = set(re.findall(r"charter realm create ([a-z0-9-]+)", text))
    found |= set(re.findall(r'/v1/realms"? [^\n]*-d \'\{"id": "([a-z0-9-]+)"', text))
    return found


def test_output_matching_fails_on_a_difference() -> None:
    """The check above could fail: a changed line or a reordering is reported."""
    assert missing_lines("a …\nb", "x\na 1\nb\n") == []
    assert missing_lines("b\na …", "a 1\nb\n") == ["a …"]
    assert missing_lines("Plan: 8 to create", "Plan: 7 to create") == ["Plan: 8 to create"]


def test_a_failing_command_fails_the_page(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- run -->\n```sh\ntrue\n```\n\n<!-- run -->\n```sh\nfalse\necho no\n```\n")
    done = subprocess.run(
        ["bash", "-c", script(blocks(page), END)], capture_output=True, check=False
    )
    assert done.returncode != 0
    assert done.stdout.decode().count(END) == 1
    assert os.fsdecode(done.stdout).find("no\n") == -1
