"""The CLI's safety rails, against a real server: no lost trees, no tracebacks, no surprises.

Each test is a finding of issue 12: an export that failed left a 0-byte file, and an
`apply --prune` of that file deactivated the whole realm with exit 0; hostile or wrong files
printed tracebacks; `--dry-run` passed what the server then refused.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from charter.__main__ import build_parser, main
from charter.cli import exits, treefile
from charter.client import Charter, NewDirective, Patch, errors
from charter.client.vocabulary import Priority
from tests.support.api import ADMIN_KEY
from tests.support.servers import CharterServer

COMMAND_SECONDS = 60.0


@pytest.fixture
def env(server: CharterServer, realm: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CHARTER_URL", server.url)
    monkeypatch.setenv("CHARTER_KEY", ADMIN_KEY)
    monkeypatch.setenv("CHARTER_REALM", realm)
    return realm


@pytest.fixture
def client(server: CharterServer, env: str) -> Iterator[Charter]:
    with server.charter(realm=env) as charter:
        yield charter


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def node(key: str, level: str, *children: str, indent: int = 0, **fields: str) -> str:
    """One node of a tree file, as YAML text, with its children's text nested under it."""
    pad = " " * indent
    lines = [f"{pad}- key: {key}", f"{pad}  level: {level}", f"{pad}  title: Title of {key}"]
    lines += [f"{pad}  {name}: {value}" for name, value in fields.items()]
    lines.append(f"{pad}  body: Body of {key}.")
    text = "\n".join(lines) + "\n"
    if children:
        text += f"{pad}  children:\n" + "".join(children)
    return text


def teams(*keys: str) -> str:
    return "directives:\n" + node("root", "realm", *(node(k, "team", indent=2) for k in keys))


def live_keys(charter: Charter) -> set[str]:
    return {d.key or d.id for d in charter.iter_directives() if d.active_version is not None}


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --- export -----------------------------------------------------------------------------------


def test_export_with_a_keyless_directive_writes_nothing_and_says_how_to_fix_it(
    env: str, client: Charter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = client.create(NewDirective(level="realm", title="Root", body="R.", key="root"))
    keyless = client.create(
        NewDirective(level="team", title="Keyless", body="K.", parent_id=root.id)
    )
    kept = tmp_path / "kept.yaml"
    kept.write_text("the previous export\n")
    code, out, err = run(capsys, "export", "-o", str(kept))
    assert code == exits.INVALID
    line = one_line(err)
    assert keyless.id in line
    assert "charter set ID --key KEY" in line
    assert "nothing was written" in line
    assert kept.read_text() == "the previous export\n"
    code, out, err = run(capsys, "export", "-o", str(tmp_path / "new.yaml"))
    assert code == exits.INVALID
    code, out, err = run(capsys, "export")
    assert code == exits.INVALID
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.yaml"]  # no temp file left


def test_export_to_a_file_replaces_it_whole_and_keeps_its_mode(
    env: str, client: Charter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client.create(NewDirective(level="realm", title="Root", body="R.", key="root"))
    target = tmp_path / "tree.yaml"
    target.write_text("old\n" * 1000)
    target.chmod(0o640)
    code, out, _ = run(capsys, "export", "-o", str(target))
    assert code == exits.OK
    assert out == ""
    written = target.read_text()
    assert "key: root" in written
    assert "old" not in written
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["tree.yaml"]
    assert treefile.load(written, "tree.yaml").directives[0].key == "root"


def test_export_into_a_missing_directory_is_one_line_and_exit_2(
    env: str, server: CharterServer, tmp_path: Path
) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    environ |= {"CHARTER_URL": server.url, "CHARTER_KEY": ADMIN_KEY, "CHARTER_REALM": env}
    done = subprocess.run(
        [sys.executable, "-m", "charter", "export", "-o", str(tmp_path / "no" / "dir" / "x.yaml")],
        env=environ,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    assert done.returncode == exits.USAGE, done.stderr
    line = one_line(done.stderr)
    assert "cannot write" in line
    assert "No such file or directory" in line
    assert not (tmp_path / "no").exists()


def test_export_orders_siblings_by_key_so_a_priority_change_moves_nothing(
    env: str, client: Charter, capsys: pytest.CaptureFixture[str]
) -> None:
    root = client.create(NewDirective(level="realm", title="Root", body="R.", key="root"))
    ordered: list[tuple[str, Priority]] = [("m", "high"), ("z", "critical"), ("a", "low")]
    for key, priority in ordered:
        client.create(
            NewDirective(
                level="team", title=key, body="B.", key=key, priority=priority, parent_id=root.id
            )
        )

    def order() -> list[str]:
        code, out, _ = run(capsys, "export")
        assert code == exits.OK
        return [n.key for n, _ in treefile.walk(treefile.load(out, "export").directives)]

    assert order() == ["root", "a", "m", "z"]
    a = client.find("a")
    assert a is not None
    client.update(a.id, Patch(priority="critical"), expected_revision=a.revision)
    assert order() == ["root", "a", "m", "z"]


# --- apply --prune ----------------------------------------------------------------------------


def test_the_incident_an_empty_file_never_prunes(
    env: str, client: Charter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(teams("a", "b"))
    assert run(capsys, "apply", "-f", str(path))[0] == exits.OK
    before = live_keys(client)
    assert before == {"root", "a", "b"}
    for empty in ("", "# charter export\n", "directives: []\n", f"realm: {env}\n"):
        path.write_text(empty)  # what `charter export > tree.yaml` leaves when export fails
        code, _, err = run(capsys, "apply", "--prune", "--yes", "-f", str(path))
        assert code == exits.INVALID, err
        assert "never prunes" in err
        assert live_keys(client) == before
    path.write_text("")
    code, out, _ = run(capsys, "apply", "-f", str(path))  # without --prune: nothing to do
    assert code == exits.OK
    assert "No changes" in out


def test_a_prune_above_the_share_needs_yes_and_shows_the_count(
    env: str, client: Charter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(teams("a", "b", "c", "d", "e"))
    assert run(capsys, "apply", "-f", str(path))[0] == exits.OK  # 6 live
    path.write_text(teams("a", "b", "c", "d"))  # prunes 1 of 6: under 20 %
    code, out, _ = run(capsys, "apply", "--prune", "-f", str(path))
    assert code == exits.OK, out
    assert "1 to deactivate (1 by --prune, of 6 live)" in out
    assert "e" not in live_keys(client)

    path.write_text(teams("a"))  # prunes 3 of 5: 60 %
    code, out, err = run(capsys, "apply", "--prune", "-f", str(path))
    assert code == exits.USAGE
    assert "- deactivate b" in out  # the plan is shown
    assert "--prune would deactivate 3 of the 5 live directive(s)" in err
    assert "60%" in err
    assert "--yes" in err
    assert live_keys(client) == {"root", "a", "b", "c", "d"}
    code, out, err = run(capsys, "apply", "--prune", "--dry-run", "-f", str(path))
    assert code == exits.OK  # a dry run changes nothing, and says what the real one needs
    assert "--yes" in err
    assert run(capsys, "apply", "--prune", "--max-prune", "0.6", "-f", str(path))[0] == exits.OK
    assert live_keys(client) == {"root", "a"}

    path.write_text("directives:\n" + node("other", "realm"))  # everything live goes
    code, _, err = run(capsys, "apply", "--prune", "--max-prune", "1", "-f", str(path))
    assert code == exits.USAGE
    assert "every one" in err
    assert live_keys(client) == {"root", "a"}
    code, out, _ = run(capsys, "apply", "--prune", "--yes", "-f", str(path))
    assert code == exits.OK, out
    assert live_keys(client) == {"other"}


@pytest.mark.parametrize("share", ["1.5", "-0.1", "nan", "lots"])
def test_max_prune_takes_a_share_from_0_to_1(
    share: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["apply", "-f", "x", "--max-prune", share])
    assert exited.value.code == exits.USAGE
    assert "share from 0 to 1" in capsys.readouterr().err


# --- files the server would refuse, and hostile files ----------------------------------------


def _chain(start: int, count: int) -> str:
    text = ""
    for depth in range(start + count - 1, start - 1, -1):
        children = (text,) if text else ()
        text = node(f"t{depth}", "team", *children, indent=2 * depth)
    return text


LIMITS = {
    "a body of 33 000 bytes": (
        "directives:\n- {key: r, level: realm, title: T, body: '" + "x" * 33_000 + "'}\n",
        "body is 33000 bytes of UTF-8; the limit is 32768",
    ),
    "a body of 16 385 two-byte characters": (
        "directives:\n- {key: r, level: realm, title: T, body: '" + "é" * 16_385 + "'}\n",
        "body is 32770 bytes",
    ),
    "a title of 257 characters": (
        "directives:\n- {key: r, level: realm, title: '" + "t" * 257 + "', body: B}\n",
        "title is 257 characters",
    ),
    "a title of two lines": (
        'directives:\n- {key: r, level: realm, title: "a\\nb", body: B}\n',
        "title must be one line",
    ),
    "an empty body": ("directives:\n- {key: r, level: realm, title: T, body: ' '}\n", "body must"),
    "a key in capitals": (
        "directives:\n- {key: Root, level: realm, title: T, body: B}\n",
        "key 'Root' must be",
    ),
    "an owner with a space": (
        "directives:\n- {key: r, level: realm, title: T, body: B, owner_agent_id: 'a b'}\n",
        "owner_agent_id 'a b' must be",
    ),
    "a reserved metadata key": (
        "directives:\n- {key: r, level: realm, title: T, body: B, metadata: {charter.x: 1}}\n",
        "'charter.x'",
    ),
    "metadata over 8 KiB": (
        "directives:\n- {key: r, level: realm, title: T, body: B, metadata: {k: '"
        + "m" * 9000
        + "'}}\n",
        "the limit is 8192",
    ),
    "a tree 17 levels deep": (
        "directives:\n"
        + node(
            "t0",
            "realm",
            _chain(1, 16),
        ),
        "deeper than 16 levels",
    ),
    "an agent node at the root": (
        "directives:\n- {key: r, level: agent, title: T, body: B}\n",
        "'r' is an agent node, so needs a parent",
    ),
}


@pytest.mark.parametrize(("text", "said"), LIMITS.values(), ids=LIMITS.keys())
def test_dry_run_refuses_what_the_server_would_refuse(
    text: str,
    said: str,
    env: str,
    client: Charter,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(text, encoding="utf-8")
    for extra in (["--dry-run"], []):
        code, out, err = run(capsys, "apply", "-f", str(path), *extra)
        assert code == exits.INVALID, out + err
        assert said in err
        assert "Traceback" not in err
    assert live_keys(client) == set()


def test_a_tree_16_levels_deep_applies(
    env: str, client: Charter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text("directives:\n" + node("t0", "realm", _chain(1, 15)))
    code, out, err = run(capsys, "apply", "-f", str(path))
    assert code == exits.OK, out + err
    assert len(live_keys(client)) == 16


HOSTILE = {
    "an alias to its own ancestor": (
        "directives: &d\n- key: r\n  level: realm\n  title: T\n  body: B\n  children: *d\n"
    ),
    "a recursive mapping": "realm: &x {a: *x}\n",
    "an alias bomb in metadata": (
        "directives:\n- key: r\n  level: realm\n  title: T\n  body: B\n  metadata:\n"
        "    a: &a [x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"    {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 8)}]\n"
            for i in range(8)
        )
    ),
    "nesting 5 000 deep": "[" * 5_000 + "]" * 5_000,
    "a list, not a mapping": "- key: r\n",
    "a scalar": "just words\n",
    "directives as a number": "directives: 5\n",
    "a title as a number": "directives:\n- {key: r, level: realm, title: 5, body: B}\n",
    "an unknown field": "directives:\n- {key: r, level: realm, title: T, body: B, colour: red}\n",
    "a python tag": "!!python/object/apply:os.system ['true']\n",
    "a binary body": "directives:\n- {key: r, level: realm, title: T, body: !!binary aGk=}\n",
    "a metadata key as a number": (
        "directives:\n- {key: r, level: realm, title: T, body: B, metadata: {1: 2}}\n"
    ),
    "broken YAML": "directives: [\n",
    "a duplicate key": "directives:\n" + node("r", "realm", node("r", "team", indent=2)),
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_or_wrong_file_is_one_line_and_exit_5(
    text: str, env: str, client: Charter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(text)
    code, _, err = run(capsys, "apply", "--dry-run", "-f", str(path))
    assert code == exits.INVALID, err
    assert one_line(err).startswith(f"charter: {path}")
    assert live_keys(client) == set()


def test_a_file_that_is_not_utf8_is_one_line_and_exit_5(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_bytes(b"directives:\n- {key: r, level: realm, title: \xff\xfe, body: B}\n")
    code, _, err = run(capsys, "apply", "-f", str(path))
    assert code == exits.INVALID
    assert "not UTF-8" in one_line(err)


def test_a_date_in_metadata_stays_a_string_so_a_reapply_changes_nothing(
    env: str, client: Charter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text("directives:\n" + node("r", "realm", metadata="{since: 2024-01-01}"))
    assert run(capsys, "apply", "-f", str(path))[0] == exits.OK
    found = client.find("r")
    assert found is not None
    assert found.metadata == {"since": "2024-01-01"}
    assert "No changes" in run(capsys, "apply", "-f", str(path))[1]


# --- the plan, messages and help ---------------------------------------------------------------


def test_the_plan_shows_metadata_before_and_after(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text("directives:\n" + node("r", "realm", metadata="{team: blue, n: 1}"))
    assert run(capsys, "apply", "-f", str(path))[0] == exits.OK
    path.write_text("directives:\n" + node("r", "realm", metadata="{team: red}"))
    code, out, _ = run(capsys, "apply", "--dry-run", "-f", str(path))
    assert code == exits.OK
    assert 'metadata: {"n": 1, "team": "blue"} → {"team": "red"}' in out


def test_set_names_the_cascade_and_reopen_flags(
    env: str, client: Charter, capsys: pytest.CaptureFixture[str]
) -> None:
    root = client.create(NewDirective(level="realm", title="Root", body="R.", key="root"))
    client.create(NewDirective(level="team", title="T", body="T.", key="t", parent_id=root.id))
    code, _, err = run(capsys, "set", "root", "--status", "completed")
    assert code == exits.CONFLICT
    line = one_line(err)
    assert line == (
        "charter: has-open-children: 1 descendant(s) are still open; "
        "run it again with --cascade to complete them too"
    )
    code, _, err = run(capsys, "set", "root", "--status", "cancelled", "--cascade")
    assert code == exits.OK, err
    code, _, err = run(capsys, "set", "root", "--status", "active")
    assert code == exits.CONFLICT
    assert one_line(err) == (
        "charter: invalid-transition: cannot move a cancelled node to active; "
        "run it again with --reopen"
    )
    code, _, err = run(capsys, "set", "root", "--status", "paused")
    assert code == exits.CONFLICT
    assert "--reopen" not in err  # a reopen would not help: a terminal node goes to active


def test_the_servers_messages_say_an_agent(env: str, server: CharterServer) -> None:
    with Charter(server.url, ADMIN_KEY, realm=env) as admin:
        with pytest.raises(errors.InvalidInput) as refused:
            admin.create(NewDirective(level="agent", title="A", body="A."))
        assert refused.value.detail == "an agent node needs a parent"
        root = admin.create(NewDirective(level="realm", title="R", body="R."))
        agent = admin.create(NewDirective(level="agent", title="A", body="A.", parent_id=root.id))
        with pytest.raises(errors.InvalidInput) as refused:
            admin.create(NewDirective(level="team", title="T", body="T.", parent_id=agent.id))
        assert refused.value.detail == "a team node cannot be placed under an agent node"
        minted = admin.create_key("agent", [env], agent_id="w1")
    with Charter(server.url, minted.key, realm=env) as agent_client:
        with pytest.raises(errors.Forbidden) as forbidden:
            agent_client.create(NewDirective(level="realm", title="R", body="R."))
        assert forbidden.value.detail == "an agent key may not do this"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["diff", "--help"], "the version to diff from"),
        (["serve", "--help"], "worker processes (default: 1)"),
        (["serve", "--help"], "the address to listen on (default: 127.0.0.1)"),
        (["apply", "--help"], "--max-prune SHARE"),
        (["keys", "create", "--help"], "--create-database"),
    ],
)
def test_help_explains_the_arguments(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert said in " ".join(capsys.readouterr().out.split())
