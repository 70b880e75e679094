"""The client's claim and schedule methods, and holding a claim in a block."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from charter.client import AsyncCharter, AsyncHolding, Charter, Holding, errors
from charter.client import models as m
from tests.support.servers import CharterServer


def _node(charter: Charter, realm: str, **fields: object) -> m.Directive:
    return charter.create(
        m.NewDirective(level="realm", title="T", body="B", **fields),  # type: ignore[arg-type]
        realm=realm,
    )


def test_claim_heartbeat_finish_and_a_second_claim_refused(charter: Charter, realm: str) -> None:
    node = _node(charter, realm, owner_agent_id="w")
    assert charter.claims(agent="w", realm=realm).claimable == [node.id]
    held = charter.claim(node.id, "w", lease_seconds=30, realm=realm)
    assert (held.state, held.attempt) == ("live", 1)
    with pytest.raises(errors.AlreadyClaimed) as refused:
        charter.claim(node.id, "other", realm=realm)
    assert refused.value.problem.holder == "w"
    beat = charter.heartbeat(node.id, held.id, lease_seconds=120, realm=realm)
    assert beat.expires_at > held.expires_at
    done = charter.finish(node.id, held.id, "succeeded", result={"n": 1}, realm=realm)
    assert (done.changed, done.reused, done.status) == (True, False, "completed")
    again = charter.finish(node.id, held.id, "succeeded", result={"n": 1}, realm=realm)
    assert (again.changed, again.reused) == (False, True)
    assert [c.state for c in charter.claims(agent="w", realm=realm).items] == ["succeeded"]


def test_not_due_is_its_own_error(charter: Charter, realm: str) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    node = _node(charter, realm, not_before=later)
    with pytest.raises(errors.NotDue) as refused:
        charter.claim(node.id, "w", realm=realm)
    assert refused.value.problem.not_before is not None


def test_holding_finishes_succeeded_and_heartbeats_meanwhile(charter: Charter, realm: str) -> None:
    node = _node(charter, realm)
    with Holding(charter, node.id, "w", lease_seconds=5, every=0.2, realm=realm) as work:
        first = work.claim.expires_at
        time.sleep(0.7)
        work.result = {"done": True}
    listed = charter.claims(agent="w", realm=realm).items
    assert [(c.state, c.result) for c in listed] == [("succeeded", {"done": True})]
    assert listed[0].expires_at > first  # the background beats moved it
    assert charter.get(node.id, realm=realm).status == "completed"


def test_holding_finishes_failed_on_an_exception(charter: Charter, realm: str) -> None:
    node = _node(charter, realm)
    with pytest.raises(KeyError), Holding(charter, node.id, "w", realm=realm):
        raise KeyError("x")
    failed = charter.get(node.id, realm=realm)
    assert failed.status == "active"
    assert failed.last_failure is not None
    assert failed.last_failure["code"] == "KeyError"


async def test_async_holding_does_the_same(server: CharterServer, realm: str) -> None:
    assert server.key is not None
    async with AsyncCharter(server.url, server.key, realm=realm) as client:
        node = await client.create(m.NewDirective(level="realm", title="T", body="B"))
        with pytest.raises(RuntimeError):
            async with AsyncHolding(client, node.id, "w", lease_seconds=5, every=0.1):
                raise RuntimeError("boom")
        async with AsyncHolding(client, node.id, "w", lease_seconds=5, every=0.1) as work:
            assert work.claim.attempt == 2
        states = [c.state for c in (await client.claims(agent="w")).items]
        assert sorted(states) == ["failed", "succeeded"]


def test_schedules_add_list_and_cancel(charter: Charter, realm: str) -> None:
    node = _node(charter, realm)
    soon = charter.schedule(
        node.id, datetime.now(UTC) + timedelta(seconds=0.3), {"status": "paused"}, realm=realm
    )
    later = charter.schedule(
        node.id, datetime.now(UTC) + timedelta(hours=1), {"activate": 1}, realm=realm
    )
    assert charter.cancel_schedule(node.id, later.id, realm=realm).state == "cancelled"
    deadline = time.monotonic() + 5
    while charter.get(node.id, realm=realm).status != "paused":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    states = {s.id: s.state for s in charter.schedules(node.id, realm=realm).items}
    assert states == {soon.id: "done", later.id: "cancelled"}
