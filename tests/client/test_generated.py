"""sync.py is generated from aio.py, and the check in scripts/check catches a stale one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from charter.client import _generate


def test_sync_py_is_what_aio_py_generates() -> None:
    assert _generate.stale_lines() == []
    text = _generate.TARGET.read_text(encoding="utf-8")
    assert text.startswith("# Generated from aio.py")
    assert "scripts/gen-sync" in text.splitlines()[1]
    for async_only in ("async ", "await ", "asyncio", "AsyncClient", "aclose", "aiter_sse"):
        assert async_only not in text


def test_a_stale_sync_py_is_caught(tmp_path: Path) -> None:
    stale = tmp_path / "sync.py"
    current = _generate.TARGET.read_text(encoding="utf-8")
    stale.write_text(current.replace("def close(self)", "def shut(self)"), encoding="utf-8")
    diff = "".join(_generate.stale_lines(stale))
    assert "-    def shut(self) -> None:" in diff
    assert "+    def close(self) -> None:" in diff


def test_the_check_runs_as_a_file_and_passes() -> None:
    # As scripts/check runs it: the file itself, not `-m`, so a broken sync.py cannot stop it.
    done = subprocess.run(
        [sys.executable, str(Path(_generate.__file__)), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
