"""docs/releases.md's worked example, run as written against a fresh server.

A new user's path: a fresh `charter serve` (SQLite, it prints the admin key), an empty folder,
CHARTER_URL and CHARTER_KEY set, the venv's `charter` and `python` on PATH; then every block
marked `run` or `file`, in order. A failing command fails the test, and so does output the
page shows that the command does not print (statistics compared as shapes: each run draws
its own buckets). The example's own timing (a schedule two seconds out, the guard within a
second) makes this a test of those promises too.
"""

from __future__ import annotations

from pathlib import Path

from tests.docs._runbook import blocks, missing_lines, run_page
from tests.support.sqlite_server import CHARTER, clean_env, sqlite_server

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "releases.md"
PAGE_SECONDS = 240  # a bound for a hang, not a speed test (as for the quickstarts)


def test_the_worked_example_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    (tmp_path / "reader").mkdir()
    with sqlite_server(tmp_path / "server") as server:
        env = clean_env() | {
            "PATH": f"{CHARTER.parent}:{clean_env()['PATH']}",
            "HOME": str(tmp_path / "reader"),
            "CHARTER_URL": server.url,
            "CHARTER_KEY": server.key,
            "LANG": "C.UTF-8",
            "NO_COLOR": "1",
        }
        failure = run_page(PAGE, cwd=tmp_path / "reader", env=env, timeout=PAGE_SECONDS)
    assert failure is None, failure


def test_the_example_shows_every_file_it_uses() -> None:
    """Each file the commands read is on the page, as a file block, before it is used."""
    saved: set[str] = set()
    for block in blocks(PAGE):
        if block.language == "file":
            assert block.path is not None
            saved.add(block.path)
            continue
        for used in ("fleet.py", "agents.py", "v2.md", "v3.md", "v4.md"):
            if used in block.code:
                assert used in saved, f"releases.md:{block.line} uses {used} before showing it"
    assert saved == {"fleet.py", "agents.py", "v2.md", "v3.md", "v4.md"}


def test_the_example_hard_codes_no_server_or_key() -> None:
    for block in blocks(PAGE):
        assert "chk_" not in block.code, f"releases.md:{block.line} names a key"
        assert "127.0.0.1" not in block.code, f"releases.md:{block.line} names a server"


def test_numbers_vary_matching_keeps_the_words() -> None:
    """Numbers may differ, but a changed word, arm or sign of a shape is still reported."""
    shown = "  candidate  n=12     mean=0.9167   sd=0.2887"
    other = "  candidate  n=108    mean=0.1000   sd=0.3"
    assert missing_lines(shown, other, numbers_vary=True) == []
    assert missing_lines(shown, other) == [shown]
    for changed in ("  control    n=12     mean=0.9167   sd=0.2887", "  candidate  n=12  mean=-"):
        assert missing_lines(shown, changed, numbers_vary=True) == [shown]
