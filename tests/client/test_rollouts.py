"""Drafts and rollouts from the client and the CLI, against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.__main__ import main
from charter.cli import exits
from charter.client import Charter, NewDirective, Patch, errors
from charter.client import models as m
from tests.support.api import ADMIN_KEY
from tests.support.servers import CharterServer


@pytest.fixture
def env(server: CharterServer, realm: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CHARTER_URL", server.url)
    monkeypatch.setenv("CHARTER_KEY", ADMIN_KEY)
    monkeypatch.setenv("CHARTER_REALM", realm)
    monkeypatch.setenv("NO_COLOR", "1")
    return realm


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _team(charter: Charter, realm: str, agents: int) -> str:
    root = charter.create(NewDirective(level="realm", title="R", body="Root", key="r"), realm=realm)
    team = charter.create(
        NewDirective(level="team", title="T", body="Team v1", parent_id=root.id, key="team"),
        realm=realm,
    )
    for i in range(agents):
        charter.create(
            NewDirective(
                level="agent", title=f"A{i}", body="Own", parent_id=team.id, owner_agent_id=f"a{i}"
            ),
            realm=realm,
        )
    return team.id


def test_the_client_drafts_rolls_out_reports_and_promotes(charter: Charter, realm: str) -> None:
    team_id = _team(charter, realm, 4)
    team = charter.get(team_id, realm=realm)
    draft = charter.update(
        team_id, Patch(body="Team v2", activate=False), expected_revision=team.revision, realm=realm
    )
    assert (draft.latest_version, draft.active_version) == (2, 1)
    guard = m.Guard(metric="ok", higher_is_better=True, min_samples=50, max_regression=0.1)
    rolling = charter.start_rollout(
        team_id, 2, 0, expected_revision=draft.revision, agents=["a0"], guard=guard, realm=realm
    )
    assert rolling.rollout is not None
    assert rolling.rollout.guard == guard
    prompt = charter.prompt("a0", realm=realm)
    layer = next(x for x in prompt.layers if x.directive_id == team_id)
    assert (layer.version, layer.arm) == (2, "candidate")
    accepted = charter.report_outcome(prompt.composition_id, "a0", "ok", 1.0, realm=realm)
    assert [a.arm for a in accepted.attributed] == ["candidate"]
    report = charter.rollout(team_id, realm=realm)
    assert report.metrics[0].candidate.n == 1
    with pytest.raises(errors.RolloutInProgress):
        charter.rollback(team_id, 1, expected_revision=rolling.revision, realm=realm)
    promoted = charter.promote_rollout(team_id, expected_revision=rolling.revision, realm=realm)
    assert (promoted.active_version, promoted.rollout) == (2, None)
    with pytest.raises(errors.NotFound):
        charter.abort_rollout(team_id, expected_revision=promoted.revision, realm=realm)


def test_the_cli_rollout_commands(
    env: str, charter: Charter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _team(charter, env, 3)
    body = tmp_path / "v2.md"
    body.write_text("Team v2")
    code, out, err = run(capsys, "set", "team", "--body-file", str(body), "--draft")
    assert code == exits.OK, err
    assert out.startswith("drafted ")
    assert "v2 (active stays v1)" in out
    code, _, err = run(capsys, "set", "team", "--draft")
    assert code == exits.USAGE
    assert "--draft needs" in err
    code, out, err = run(capsys, "rollout", "start", "team", "2", "--percent", "10", "--pin", "a1")
    assert code == exits.OK, err
    assert "v2 to 10 % + 1 pinned (control v1)" in out
    code, out, err = run(
        capsys, "rollout", "set", "team", "--percent", "50", "--guard-metric", "ok"
    )
    assert code == exits.OK, err
    assert "v2 to 50 % + 1 pinned" in out
    assert "guarded on ok" in out
    code, out, err = run(capsys, "rollout", "status", "team")
    assert code == exits.OK, err
    assert "v2 to 50 % + 1 pinned (control v1)" in out
    assert "\npinned: a1\n" in out
    assert "no outcomes yet" in out
    assert "guard: ok (higher is better)" in out
    code, out, err = run(capsys, "prompt", "a1")
    assert code == exits.OK, err
    assert "team: T (v2, candidate)" in out
    code, out, err = run(capsys, "history", "team", "--limit", "2")
    assert code == exits.OK, err
    changed, started = out.splitlines()
    assert " rollout_changed v2 to 50 % + 1 pinned (was 10 %) by " in changed
    assert " rollout_started v2 to 10 % + 1 pinned by " in started
    code, out, err = run(capsys, "rollback", "team", "1")
    assert code == exits.CONFLICT
    assert "rollout-in-progress" in err
    code, out, err = run(capsys, "rollout", "abort", "team", "-m", "not yet")
    assert code == exits.OK, err
    assert "aborted" in out
    assert "v1 active for every agent" in out
    code, out, err = run(capsys, "history", "team", "--limit", "1")
    assert " rollout_aborted v2 (operator) by " in out
    assert out.rstrip().endswith("— not yet")
    code, out, err = run(capsys, "rollout", "set", "team", "--percent", "5")
    assert code == exits.USAGE
    assert "no running rollout" in err
    code, out, err = run(capsys, "rollout", "start", "team", "2", "--percent", "12.345")
    assert code == exits.INVALID, out
    code, out, err = run(capsys, "rollout", "start", "team", "2", "--percent", "100")
    assert code == exits.OK, err
    code, out, err = run(capsys, "rollout", "promote", "team", "-m", "ship it")
    assert code == exits.OK, err
    assert "promoted" in out
    assert "v2 active for every agent" in out


def test_rollout_status_names_ten_pinned_agents_then_counts(
    env: str, charter: Charter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _team(charter, env, 12)
    body = tmp_path / "v2.md"
    body.write_text("Team v2")
    assert run(capsys, "set", "team", "--body-file", str(body), "--draft")[0] == exits.OK
    pins = [arg for i in range(12) for arg in ("--pin", f"a{i}")]
    code, out, err = run(capsys, "rollout", "start", "team", "2", "--percent", "0", *pins)
    assert code == exits.OK, err
    assert "v2 to 0 % + 12 pinned" in out
    code, out, err = run(capsys, "rollout", "status", "team")
    assert code == exits.OK, err
    pinned = next(line for line in out.splitlines() if line.startswith("pinned: "))
    assert pinned.endswith(" and 2 more")
    assert len(pinned.removeprefix("pinned: ").split(", ")) == 10
