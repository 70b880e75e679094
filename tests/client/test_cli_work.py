"""`charter claims`, `claim`, `finish` and `schedule add|list|cancel` against a real server."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from charter.__main__ import main
from charter.cli import exits
from charter.client import Charter, NewDirective
from tests.support.api import ADMIN_KEY
from tests.support.servers import CharterServer


@pytest.fixture
def env(server: CharterServer, realm: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CHARTER_URL", server.url)
    monkeypatch.setenv("CHARTER_KEY", ADMIN_KEY)
    monkeypatch.setenv("CHARTER_REALM", realm)
    return realm


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_claim_list_and_finish_from_the_terminal(
    env: str, charter: Charter, capsys: pytest.CaptureFixture[str]
) -> None:
    node = charter.create(
        NewDirective(level="realm", title="T", body="B", key="job", owner_agent_id="w"), realm=env
    )
    code, out, _ = run(capsys, "claims", "--agent", "w")
    assert code == exits.OK
    assert f"claimable: {node.id}" in out
    code, out, _ = run(capsys, "claim", "job", "--agent", "w", "--lease", "30", "--json")
    assert code == exits.OK
    made = json.loads(out)
    claim_id = made["id"]
    # Refused, it says who holds the claim and until when (and never the directive's text).
    code, out, err = run(capsys, "claim", "job", "--agent", "x")
    assert code == exits.CONFLICT
    until = datetime.fromisoformat(made["expires_at"]).isoformat()
    assert err == f"charter: already-claimed: {node.id} is claimed by w until {until}\n"
    assert out == ""
    code, out, _ = run(capsys, "finish", "job", claim_id, "failed", "--error-code", "oops")
    assert code == exits.OK
    assert "is active" in out
    failure = charter.get(node.id, realm=env).last_failure
    assert failure is not None
    assert failure["code"] == "oops"
    code, out, _ = run(capsys, "claims", "--state", "failed", "--json")
    assert [c["id"] for c in json.loads(out)["items"]] == [claim_id]
    ended = datetime.fromisoformat(json.loads(out)["items"][0]["finished_at"]).isoformat()
    code, out, _ = run(capsys, "claims", "--state", "failed")
    assert out == f"{claim_id}  {node.id}  w  failed  attempt 1  ended {ended}\n"


def test_schedule_add_list_and_cancel_from_the_terminal(
    env: str, charter: Charter, capsys: pytest.CaptureFixture[str]
) -> None:
    node = charter.create(NewDirective(level="realm", title="T", body="B"), realm=env)
    soon = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    code, out, _ = run(capsys, "schedule", "add", node.id, "--at", soon, "--status", "paused")
    assert code == exits.OK
    assert out.startswith("scheduled sch_")
    code, out, _ = run(
        capsys, "schedule", "add", node.id, "--at", later, "--action", '{"promote": true}', "--json"
    )
    sid = json.loads(out)["id"]
    assert run(capsys, "schedule", "cancel", node.id, sid)[0] == exits.OK
    deadline = time.monotonic() + 5
    while charter.get(node.id, realm=env).status != "paused":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    code, out, _ = run(capsys, "schedule", "list", node.id)
    assert "done" in out
    assert "cancelled" in out
    code, _, err = run(
        capsys, "schedule", "add", node.id, "--at", "2030-01-01T00:00", "--status", "paused"
    )
    assert code == exits.USAGE
    assert "UTC offset" in err


def test_an_agent_key_claims_and_finishes_by_id_from_the_terminal(
    env: str, charter: Charter, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An agent key may not read directives, so the CLI must not look one up before claiming.
    node = charter.create(
        NewDirective(level="realm", title="T", body="B", owner_agent_id="w"), realm=env
    )
    made = charter.create_key("agent", [env], agent_id="w")
    monkeypatch.setenv("CHARTER_KEY", made.key)
    code, out, _ = run(capsys, "claim", node.id, "--agent", "w", "--lease", "30", "--json")
    assert code == exits.OK, out
    claim_id = json.loads(out)["id"]
    code, out, _ = run(capsys, "finish", node.id, claim_id, "succeeded")
    assert code == exits.OK
    assert f"{node.id} is completed" in out
