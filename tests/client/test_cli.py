"""The client-side `charter` commands, through their entry point, against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from charter.__main__ import main
from charter.cli import exits
from charter.client import Charter, NewDirective, Patch
from tests.support.api import ADMIN_KEY
from tests.support.ports import free_port
from tests.support.servers import CharterServer


@pytest.fixture
def env(server: CharterServer, realm: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CHARTER_URL", server.url)
    monkeypatch.setenv("CHARTER_KEY", ADMIN_KEY)
    monkeypatch.setenv("CHARTER_REALM", realm)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return realm


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_inspect_change_and_roll_back_from_the_terminal(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "body.md"
    body.write_text("Ship by Friday.")
    code, out, _ = run(
        capsys,
        "create",
        "--level",
        "realm",
        "--title",
        "Ship v2.0",
        "--body-file",
        str(body),
        "--key",
        "ship",
        "--priority",
        "high",
    )
    assert code == exits.OK, out
    body.write_text("Code it.")
    code, _, _ = run(
        capsys,
        "create",
        "--level",
        "team",
        "--title",
        "Engineering",
        "--body-file",
        str(body),
        "--parent",
        "ship",
        "--key",
        "ship/eng",
        "--owner",
        "coder-1",
    )
    assert code == exits.OK

    code, out, _ = run(capsys, "tree")
    assert code == exits.OK
    assert "Realm: Ship v2.0 (Active) · high · v1  ship" in out
    assert "└── Team: Engineering (Active) · normal · owner coder-1 · v1  ship/eng" in out

    body.write_text("Code it well.")
    code, out, _ = run(capsys, "set", "ship/eng", "--body-file", str(body), "-m", "tighter")
    assert code == exits.OK
    assert "updated" in out
    assert "v2" in out

    code, out, _ = run(capsys, "diff", "ship/eng", "1", "2", "--color", "always")
    assert "\x1b[32m+Code it well.\x1b[0m" in out
    code, out, _ = run(capsys, "history", "ship/eng")
    assert "version_created v2 by" in out
    assert "tighter" in out
    code, out, _ = run(capsys, "show", "ship/eng", "--json")
    shown = json.loads(out)
    assert (shown["body"], shown["revision"]) == ("Code it well.", 2)

    code, out, _ = run(capsys, "rollback", "ship/eng", "1", "-m", "too strict")
    assert code == exits.OK
    assert "v1" in out
    code, out, _ = run(capsys, "prompt", "coder-1", "--raw")
    assert out == "# Ship v2.0\n\nShip by Friday.\n\n## Engineering\n\nCode it.\n"
    code, out, _ = run(capsys, "events", "--json")
    assert [e["type"] for e in json.loads(out)["items"]][-1] == "directive.rolled_back"


def test_exit_codes_by_problem_class(
    env: str, server: CharterServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "show", "dir_" + "0" * 26)
    assert code == exits.NOT_FOUND
    assert "not-found" in err
    code, _, err = run(capsys, "show", "no/such/key")
    assert code == exits.NOT_FOUND
    assert "no directive has the key 'no/such/key'" in err
    with Charter(server.url, ADMIN_KEY, realm=env) as charter:
        node = charter.create(NewDirective(level="realm", title="T", body="B"))
        charter.update(node.id, Patch(body="C"), expected_revision=1)
    code, _, err = run(capsys, "set", node.id, "--title", "X", "--expected-revision", "1")
    assert code == exits.CONFLICT
    assert "stale-revision" in err
    code, _, _ = run(capsys, "set", node.id, "--status", "completed", "--expected-revision", "2")
    assert code == exits.OK
    code, _, err = run(capsys, "set", node.id, "--status", "paused")
    assert code == exits.CONFLICT
    assert "invalid-transition" in err
    code, _, err = run(capsys, "realm", "create", "Not A Slug")
    assert code == exits.INVALID
    assert "invalid-request" in err
    code, _, err = run(capsys, "tree", "--api-key", "chk_nobody")
    assert code == exits.AUTH
    assert "unauthenticated" in err
    code, _, err = run(capsys, "tree", "--url", "http://127.0.0.1:9")
    assert code == exits.UNAVAILABLE
    assert "cannot reach" in err


def test_realms_and_keys(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "realm", "list", "--json")
    assert env in {r["id"] for r in json.loads(out)}
    code, out, err = run(capsys, "keys", "create", "--remote", "--role", "reader", "--realm", env)
    assert code == exits.OK
    assert out.startswith("chk_")
    key_id = err.split("key ")[1].split(";")[0]
    code, out, _ = run(capsys, "keys", "list")
    assert key_id in out
    code, out, _ = run(capsys, "keys", "revoke", key_id)
    assert code == exits.OK
    code, out, _ = run(capsys, "keys", "list", "--json")
    revoked = {k["id"]: k["revoked_at"] for k in json.loads(out)["items"]}
    assert revoked[key_id] is not None


def test_the_installed_command_runs_as_a_process(env: str, server: CharterServer) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "charter", "tree", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["realm_id"] == env
    usage = subprocess.run(
        [sys.executable, "-m", "charter", "tree", "--bogus"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert usage.returncode == exits.USAGE


def test_an_unreachable_server_is_reported_once(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    done = subprocess.run(
        [sys.executable, "-m", "charter", "tree", "--url", url, "--realm", "r"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == exits.UNAVAILABLE
    # The retries before it (stamina's) log nothing to the terminal.
    [line] = done.stderr.splitlines()
    assert line.startswith(f"charter: cannot reach {url}: ConnectError")
