"""`charter apply` draws a progress bar on stderr for large applies, and only for those."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from charter.__main__ import main
from charter.cli import exits
from charter.cli.declarative import PROGRESS_FROM
from tests.support.api import ADMIN_KEY
from tests.support.servers import CharterServer

FULL_BAR = "[" + "#" * 30 + "]"


@pytest.fixture
def env(server: CharterServer, realm: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CHARTER_URL", server.url)
    monkeypatch.setenv("CHARTER_KEY", ADMIN_KEY)
    return realm


def tree_file(path: Path, teams: int) -> Path:
    """A realm root with `teams` teams under it: 1 + teams creates."""
    lines = ["directives:", "- key: root", "  level: realm", "  title: Root", "  body: The root."]
    lines.append("  children:")
    for n in range(teams):
        lines += [
            f"  - key: team-{n}",
            "    level: team",
            f"    title: Team {n}",
            f"    body: Team {n} does its part.",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def apply(capsys: pytest.CaptureFixture[str], realm: str, *argv: str) -> tuple[int, str, str]:
    code = main(["apply", "--realm", realm, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_large_apply_draws_the_bar_to_the_end(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    total = PROGRESS_FROM + 4
    path = tree_file(tmp_path / "tree.yaml", teams=total - 1)
    code, out, err = apply(capsys, env, "-f", str(path), "--progress")
    assert code == exits.OK, out + err
    assert f"Applied {total} step(s)" in out
    assert f"\r{FULL_BAR} {total}/{total} create team-{total - 2}" in err
    assert f" 1/{total} create root" in err
    assert err.endswith("\n")  # the bar's line is finished, not left for the next output
    assert "\r" not in out  # the plan and the summary stay clean on stdout


def test_no_bar_off_a_terminal_unless_asked_and_never_for_a_small_apply(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    total = PROGRESS_FROM + 4
    path = tree_file(tmp_path / "tree.yaml", teams=total - 1)
    code, out, err = apply(capsys, env, "-f", str(path))  # stderr here is not a terminal
    assert code == exits.OK
    assert f"Applied {total} step(s)" in out
    assert "\r" not in err
    assert f"/{total}" not in err

    small = tree_file(tmp_path / "small.yaml", teams=total + 2)  # 3 new teams: 3 steps
    code, out, err = apply(capsys, env, "-f", str(small), "--progress")
    assert code == exits.OK
    assert "Applied 3 step(s)" in out
    assert "\r" not in err
    assert "/3" not in err


def apply_on_a_terminal(realm: str, *argv: str) -> tuple[int, str]:
    """`charter apply` as a process whose stderr is a terminal (a pty): exit code, stderr."""
    main_end, its_end = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "charter", "apply", "--realm", realm, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=its_end,
        )
    finally:
        os.close(its_end)
    chunks = []
    try:
        while True:  # read as it runs: a full pty buffer would stall the process
            try:
                chunk = os.read(main_end, 4096)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait(60)
    finally:
        os.close(main_end)
    return code, b"".join(chunks).decode()


def test_on_a_terminal_the_bar_is_the_default_and_no_progress_turns_it_off(
    env: str, tmp_path: Path
) -> None:
    total = PROGRESS_FROM + 1
    path = tree_file(tmp_path / "tree.yaml", teams=total - 1)
    code, err = apply_on_a_terminal(env, "-f", str(path))
    assert code == exits.OK, err
    assert f"\r{FULL_BAR} {total}/{total} create team-{total - 2}" in err

    more = tree_file(tmp_path / "more.yaml", teams=total - 1 + PROGRESS_FROM)
    code, err = apply_on_a_terminal(env, "-f", str(more), "--no-progress")
    assert code == exits.OK, err
    assert err == ""
