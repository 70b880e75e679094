"""Declarative trees: export, plan, apply, idempotence, conflicts mid-apply, prune."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from charter.__main__ import main
from charter.cli import exits, treefile
from charter.cli._style import Style
from charter.cli.declarative import execute, fetch_state
from charter.cli.plan import make_plan
from charter.client import Charter, Patch
from tests.support.api import ADMIN_KEY
from tests.support.servers import CharterServer

EXAMPLE = Path(__file__).parents[2] / "examples" / "ship.yaml"

SMALL = """\
realm: ignored-when-realm-is-passed
directives:
- key: root
  level: realm
  title: Root
  body: The root.
  children:
  - key: a
    level: team
    title: A
    body: Team A.
    children:
    - key: a/worker
      level: agent
      title: Worker
      owner_agent_id: w1
      body: Work.
  - key: b
    level: team
    title: B
    body: Team B.
"""


@pytest.fixture
def env(server: CharterServer, realm: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CHARTER_URL", server.url)
    monkeypatch.setenv("CHARTER_KEY", ADMIN_KEY)
    return realm


def apply(
    capsys: pytest.CaptureFixture[str], realm: str, path: Path, *extra: str
) -> tuple[int, str]:
    code = main(["apply", "-f", str(path), "--realm", realm, *extra])
    out, err = capsys.readouterr()
    return code, out + err


def by_key(nodes: list[treefile.FileNode]) -> list[treefile.FileNode]:
    """The nodes with every level of siblings in key order, as export writes them."""
    return sorted(
        (msgspec.structs.replace(n, children=by_key(n.children)) for n in nodes),
        key=lambda n: n.key,
    )


def test_the_example_applies_then_round_trips(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = apply(capsys, env, EXAMPLE, "--dry-run")
    assert code == exits.OK
    assert "Plan: 8 to create, 0 to update, 1 status change(s), 0 to deactivate." in out
    code, out = apply(capsys, env, EXAMPLE)
    assert code == exits.OK, out
    code, out = apply(capsys, env, EXAMPLE)
    assert "No changes" in out

    assert main(["export", env]) == exits.OK
    exported = capsys.readouterr().out
    desired = treefile.load(EXAMPLE.read_text(), "example")
    again = treefile.load(exported, "export")
    # The same tree, field for field; export orders siblings by key.
    assert again.directives == by_key(desired.directives)
    (tmp_path / "tree.yaml").write_text(exported)
    code, out = apply(capsys, env, tmp_path / "tree.yaml")
    assert "No changes" in out

    main(["tree", env])
    tree = capsys.readouterr().out
    assert "Realm: Ship v2.0 (Active) · critical · owner captain · v1  ship" in tree
    assert "Team: Launch (Completed)" in tree


def test_plan_shows_updates_moves_and_status_then_applies_them(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(SMALL)
    assert apply(capsys, env, path)[0] == exits.OK
    changed = SMALL.replace(
        "body: Work.", "priority: high\n      status: paused\n      body: Work hard."
    ).replace(
        "  - key: b\n", "  - key: c\n    level: team\n    title: C\n    body: Team C.\n  - key: b\n"
    )
    # Move the worker from A to B.
    worker = (
        "    children:\n    - key: a/worker\n      level: agent\n      title: Worker\n"
        "      owner_agent_id: w1\n      priority: high\n      status: paused\n"
        "      body: Work hard.\n"
    )
    changed = changed.replace(worker, "") + worker
    path.write_text(changed)
    code, out = apply(capsys, env, path, "--dry-run")
    assert code == exits.OK
    assert "+ create c" in out
    assert "~ update a/worker" in out
    assert "priority: normal → high" in out
    assert "status: active → paused" in out
    assert "move: a → b" in out
    assert "-Work." in out
    assert "+Work hard." in out
    code, out = apply(capsys, env, path)
    assert code == exits.OK, out
    assert "No changes" in apply(capsys, env, path)[1]


def test_prune_deactivates_only_when_asked(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(SMALL)
    apply(capsys, env, path)
    path.write_text(SMALL.split("  - key: b\n")[0])
    code, out = apply(capsys, env, path)
    assert "No changes" in out
    assert "1 live directive(s) are not in the file" in out
    code, out = apply(capsys, env, path, "--prune")  # 1 of 4 live: above --max-prune 0.2
    assert code == exits.USAGE
    assert "--prune would deactivate 1 of the 4 live directive(s)" in out
    code, out = apply(capsys, env, path, "--prune", "--max-prune", "0.25")
    assert code == exits.OK
    assert "- deactivate b" in out
    assert "No changes" in apply(capsys, env, path, "--prune")[1]


def test_a_conflict_mid_apply_stops_says_what_and_a_rerun_completes(
    env: str, server: CharterServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(SMALL)
    apply(capsys, env, path)
    path.write_text(
        SMALL.replace("Team A.", "Team A, revised.").replace("Team B.", "Team B, revised.")
    )
    with Charter(server.url, ADMIN_KEY, realm=env) as charter:
        desired = treefile.load(path.read_text(), "tree.yaml")
        state = fetch_state(charter, env)
        plan = make_plan(desired, state, prune=False)
        assert [s.key for s in plan.steps] == ["a", "b"]
        # Someone edits B between the plan and its apply.
        b = charter.find("b")
        assert b is not None
        charter.update(
            b.id, Patch(priority="high", message="urgent now"), expected_revision=b.revision
        )
        code = execute(charter, plan, state, Style(False))
        assert code == exits.CONFLICT
        err = capsys.readouterr().err
        assert "conflict at step 2 of 2 (update b)" in err
        assert "priority" in err
        assert "urgent now" in err
        assert "1 step(s) were applied" in err
        assert charter.find("a").body == "Team A, revised."  # type: ignore[union-attr]
        assert charter.find("b").body == "Team B."  # type: ignore[union-attr]

    code, out = apply(capsys, env, path)
    assert code == exits.OK
    assert "~ update b" in out
    assert "priority: high → normal" in out
    assert "update a" not in out
    assert "No changes" in apply(capsys, env, path)[1]


def test_a_bad_file_is_invalid_input(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text("directives:\n- key: x\n  level: team\n  title: T\n  body: B\n")
    code, out = apply(capsys, env, path)
    assert code == exits.INVALID
    assert "needs a parent" in out
    path.write_text("directives:\n- key: x\n  level: realm\n  title: T\n  body: B\n  colour: red\n")
    code, out = apply(capsys, env, path)
    assert code == exits.INVALID
    assert "colour" in out
