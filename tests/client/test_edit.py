"""`charter edit` through the entry point, against a real server, with a scripted $EDITOR."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from charter.__main__ import main
from charter.cli import exits
from charter.client import Charter, NewDirective
from charter.client import models as m
from tests.support.api import ADMIN_KEY
from tests.support.servers import CharterServer

# A stand-in for a person at an editor: it records the file it was given and what was in it,
# writes the new text, and, when asked, races the edit with an update of its own through the
# client before it returns, as a colleague at another terminal would.
EDITOR = """\
import json
import os
import sys
from pathlib import Path

path = Path(sys.argv[1])
record = {"path": str(path), "text": path.read_text(encoding="utf-8")}
Path(os.environ["FAKE_EDITOR_RECORD"]).write_text(json.dumps(record), encoding="utf-8")
if "FAKE_EDITOR_TEXT" in os.environ:
    path.write_text(os.environ["FAKE_EDITOR_TEXT"], encoding="utf-8")
if "FAKE_EDITOR_RACE" in os.environ:
    from charter.client import Charter, Patch

    with Charter.from_env() as charter:
        node = charter.find("ship")
        patch = Patch(body=os.environ["FAKE_EDITOR_RACE"], priority="high", message="meanwhile")
        charter.update(node.id, patch, expected_revision=node.revision)
sys.exit(int(os.environ.get("FAKE_EDITOR_EXIT", "0")))
"""


@pytest.fixture
def env(server: CharterServer, realm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI pointed at the realm, no terminal on stdin, $EDITOR the script; its record."""
    monkeypatch.setenv("CHARTER_URL", server.url)
    monkeypatch.setenv("CHARTER_KEY", ADMIN_KEY)
    monkeypatch.setenv("CHARTER_REALM", realm)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)
    for name in ("TEXT", "RACE", "EXIT"):
        monkeypatch.delenv(f"FAKE_EDITOR_{name}", raising=False)
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    monkeypatch.setenv("EDITOR", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")
    record = tmp_path / "editor.json"
    monkeypatch.setenv("FAKE_EDITOR_RECORD", str(record))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal, whoever runs pytest
    return record


@pytest.fixture
def client(server: CharterServer, realm: str) -> Iterator[Charter]:
    with server.charter(realm) as charter:
        yield charter


@pytest.fixture
def ship(env: Path, client: Charter) -> m.Directive:
    return client.create(
        NewDirective(level="realm", title="Ship v2.0", body="Ship by Friday.", key="ship")
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def editor_saw(record: Path) -> tuple[Path, str]:
    seen = json.loads(record.read_text())
    return Path(seen["path"]), seen["text"]


def kept_file(err: str) -> Path:
    found = re.search(r"your text is kept in (\S+)", err)
    assert found, err
    return Path(found.group(1))


def test_an_edit_makes_a_new_version_with_the_message(
    env: Path,
    ship: m.Directive,
    client: Charter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FAKE_EDITOR_TEXT", "Ship by Thursday.\n")
    code, out, err = run(capsys, "edit", "ship", "-m", "sooner")
    assert code == exits.OK, err
    assert f"updated {ship.id} (ship): v2, revision 2" in out
    path, shown = editor_saw(env)
    # The body lacks a final newline: the file gets one, and it comes off again on saving.
    assert shown == "Ship by Friday.\n"
    assert not path.exists()
    now = client.get(ship.id)
    assert (now.body, now.revision, now.active_version) == ("Ship by Thursday.", 2, 2)
    version = client.version(ship.id, 2)
    assert (version.message, version.based_on) == ("sooner", 1)


def test_by_id_with_visual_over_editor(
    env: Path,
    ship: m.Directive,
    client: Charter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VISUAL", os.environ["EDITOR"])
    monkeypatch.setenv("EDITOR", "false")
    monkeypatch.setenv("FAKE_EDITOR_TEXT", "Ship by Monday.")
    code, _, err = run(capsys, "edit", ship.id, "--message", "much sooner")
    assert code == exits.OK, err
    assert client.get(ship.id).body == "Ship by Monday."


def test_unchanged_text_writes_nothing(
    env: Path,
    ship: m.Directive,
    client: Charter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = client.realm_info().revision
    monkeypatch.setenv("FAKE_EDITOR_TEXT", "Ship by Friday.\n")  # saved as is, as vi would
    code, out, err = run(capsys, "edit", "ship", "-m", "nothing really")
    assert code == exits.OK
    assert "unchanged" in out
    assert "nothing written" in out
    assert "kept" not in err
    assert not editor_saw(env)[0].exists()
    now = client.get(ship.id)
    assert (now.revision, now.latest_version) == (1, 1)
    assert client.realm_info().revision == before  # no event either


def test_a_conflict_shows_what_changed_and_yes_reapplies_on_top(
    env: Path,
    ship: m.Directive,
    client: Charter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FAKE_EDITOR_TEXT", "Ship by Thursday.")
    monkeypatch.setenv("FAKE_EDITOR_RACE", "Ship by Wednesday.")
    code, out, err = run(capsys, "edit", "ship", "-m", "sooner", "--yes", "--color", "always")
    assert code == exits.OK, err
    assert "changed while you were editing (revision 1 → 2)" in err
    assert "priority: normal → high" in err
    assert "version_created" in err
    assert "meanwhile" in err
    # What the other writer changed, coloured: the text the edit started from, then theirs.
    assert "\x1b[31m-Ship by Friday.\x1b[0m" in err
    assert "\x1b[32m+Ship by Wednesday.\x1b[0m" in err
    assert "Re-apply your edit on top of revision 2? [y/N] yes" in err
    assert f"updated {ship.id} (ship): v3, revision 3" in out

    now = client.get(ship.id)
    assert (now.body, now.revision, now.active_version) == ("Ship by Thursday.", 3, 3)
    assert now.priority == "high"  # the edit changes the text only; their priority stays
    theirs, mine = client.version(ship.id, 2), client.version(ship.id, 3)
    assert (theirs.body, theirs.message) == ("Ship by Wednesday.", "meanwhile")
    assert (mine.body, mine.message, mine.based_on) == ("Ship by Thursday.", "sooner", 2)
    assert [v.version for v in client.versions(ship.id).items] == [3, 2, 1]


def test_a_conflict_without_yes_or_a_terminal_keeps_the_text(
    env: Path,
    ship: m.Directive,
    client: Charter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FAKE_EDITOR_TEXT", "Ship by Thursday.")
    monkeypatch.setenv("FAKE_EDITOR_RACE", "Ship by Wednesday.")
    code, out, err = run(capsys, "edit", "ship", "-m", "sooner")
    assert code == exits.CONFLICT
    assert out == ""
    assert "Re-apply your edit on top of revision 2? [y/N] no" in err
    assert "+Ship by Wednesday." in err
    kept = kept_file(err)
    try:
        assert kept == editor_saw(env)[0]
        assert kept.read_text() == "Ship by Thursday."
    finally:
        kept.unlink()
    now = client.get(ship.id)
    assert (now.body, now.revision) == ("Ship by Wednesday.", 2)


def test_an_editor_that_fails_aborts_with_no_write(
    env: Path,
    ship: m.Directive,
    client: Charter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FAKE_EDITOR_EXIT", "3")
    code, _, err = run(capsys, "edit", "ship", "-m", "sooner")
    assert code == exits.ERROR
    assert "the editor exited with status 3; nothing written" in err
    assert "kept" not in err  # nothing was typed, so nothing to keep
    assert not editor_saw(env)[0].exists()

    # Text written before the editor failed is not saved, but not thrown away either.
    monkeypatch.setenv("FAKE_EDITOR_TEXT", "Ship by Thursday.")
    code, _, err = run(capsys, "edit", "ship", "-m", "sooner")
    assert code == exits.ERROR
    kept = kept_file(err)
    try:
        assert kept.read_text() == "Ship by Thursday."
    finally:
        kept.unlink()
    now = client.get(ship.id)
    assert (now.body, now.revision, now.latest_version) == ("Ship by Friday.", 1, 1)


def test_no_message_and_no_terminal_is_refused_before_the_editor(
    env: Path, ship: m.Directive, client: Charter, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "edit", "ship")
    assert code == exits.USAGE
    assert "-m/--message" in err
    assert not env.exists()  # the editor never ran
    assert client.get(ship.id).revision == 1


def test_empty_text_and_unknown_keys_are_refused(
    env: Path,
    ship: m.Directive,
    client: Charter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FAKE_EDITOR_TEXT", "\n")
    code, _, err = run(capsys, "edit", "ship", "-m", "clear it")
    assert code == exits.INVALID
    assert "empty" in err
    assert client.get(ship.id).revision == 1
    code, _, err = run(capsys, "edit", "no-such-key", "-m", "x")
    assert code == exits.NOT_FOUND
    assert "no directive has the key" in err


def test_no_editor_named_and_no_terminal_is_refused_before_vi(
    env: Path,
    ship: m.Directive,
    client: Charter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("EDITOR")
    code, out, err = run(capsys, "edit", "ship", "-m", "sooner")
    assert code == exits.USAGE
    assert "set $VISUAL or $EDITOR" in err
    assert "\x1b" not in out + err  # no screen of a terminal editor's escape codes
    assert not env.exists()  # no editor ran
    assert client.get(ship.id).revision == 1
