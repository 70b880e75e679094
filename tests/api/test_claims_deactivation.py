"""Claims and deactivation (§10): a deactivated directive offers no work, its deactivation
releases the live claim, and a rollback that reactivates it offers the work again."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from sqlalchemy import select

from charter.db.session import Database
from charter.db.tables import timers
from tests.support.api import ADMIN_KEY, Api
from tests.support.checks import assert_problem, assert_unchanged, if_match, snapshot
from tests.support.streams import held_stream


def _claims(api: Api, node: dict[str, Any]) -> str:
    return f"{api.base}/{node['id']}/claims"


async def _claim(api: Api, node: dict[str, Any], agent: str = "a1", **extra: Any) -> Any:
    return await api.client.post(
        _claims(api, node), json={"agent_id": agent, "lease_seconds": 30, **extra}
    )


async def _deactivate(api: Api, node: dict[str, Any]) -> None:
    current = await api.get(node["id"])
    gone = await api.client.delete(
        f"{api.base}/{node['id']}", headers=if_match(current["revision"])
    )
    assert gone.status_code == 204, gone.text


async def _rollback(api: Api, node: dict[str, Any], version: int = 1) -> dict[str, Any]:
    current = await api.get(node["id"])
    back = await api.client.post(
        f"{api.base}/{node['id']}/rollback",
        json={"version": version, "expected_revision": current["revision"]},
    )
    assert back.status_code == 200, back.text
    done: dict[str, Any] = back.json()
    return done


async def _claimable(api: Api, agent: str = "a1", **more: Any) -> list[str]:
    listed = await api.client.get(
        f"/v1/realms/{api.realm}/claims", params={"agent_id": agent, **more}
    )
    assert listed.status_code == 200, listed.text
    found: list[str] = listed.json()["claimable"]
    return found


async def test_a_deactivated_directive_is_not_due_and_nothing_is_written(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    await _deactivate(api, node)
    before = await snapshot(api, node["id"])
    problem = assert_problem(await _claim(api, node), 409, "not-due")
    assert "deactivated" in problem["detail"]
    await assert_unchanged(api, before)
    assert await _claimable(api) == []
    listed = await api.client.get(f"/v1/realms/{api.realm}/claims", params={"agent_id": "a1"})
    assert listed.json()["items"] == []


async def test_a_rerun_does_not_reopen_a_deactivated_directive(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    await api.patch(node, status="completed")
    await _deactivate(api, node)
    before = await snapshot(api, node["id"])
    assert_problem(await _claim(api, node, rerun=True), 409, "not-due")
    await assert_unchanged(api, before)
    assert before.node["status"] == "completed"


async def test_a_rollback_that_reactivates_it_makes_it_claimable_again(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    await _deactivate(api, node)
    await _rollback(api, node)
    assert await _claimable(api) == [node["id"]]
    made = await _claim(api, node)
    assert made.status_code == 201, made.text


async def test_deactivation_releases_the_live_claim_in_its_transaction(
    api: Api, db: Database
) -> None:
    node = await api.create(owner_agent_id="a1")
    made = (await _claim(api, node)).json()
    await _deactivate(api, node)
    feed = await api.events()
    deactivated = next(e for e in feed if e["type"] == "directive.deactivated")
    [released] = [e for e in feed if e["type"] == "directive.claim_expired"]
    assert released["payload"]["claim_id"] == made["id"]
    assert released["payload"]["reason"] == "deactivated"
    assert released["payload"]["agent_id"] == "a1"
    assert released["actor"] == deactivated["actor"]
    # One transaction: the same revision of the node, and adjacent in the feed.
    assert released["revision"] == deactivated["revision"]
    assert abs(released["seq"] - deactivated["seq"]) == 1
    listed = await api.client.get(f"/v1/realms/{api.realm}/claims", params={"agent_id": "a1"})
    [shown] = listed.json()["items"]
    assert (shown["id"], shown["state"]) == (made["id"], "expired")
    assert shown["finished_at"] is not None
    # Its lease's timer went with it: nothing is left to expire it a second time.
    async with db.transaction(api.realm) as conn:
        left = select(timers.c.id).where(timers.c.realm_id == api.realm, timers.c.id == made["id"])
        assert (await conn.execute(left)).first() is None
    claim_url = f"{_claims(api, node)}/{made['id']}"
    assert_problem(await api.client.post(f"{claim_url}/heartbeat"), 409, "invalid-transition")
    finish = await api.client.post(f"{claim_url}/finish", json={"outcome": "succeeded"})
    assert_problem(finish, 409, "invalid-transition")
    assert (await api.get(node["id"]))["status"] == "active"
    # Back again, the next claim is the next attempt.
    await _rollback(api, node)
    again = (await _claim(api, node, agent="a2")).json()
    assert again["attempt"] == made["attempt"] + 1


async def test_a_deactivation_without_a_live_claim_writes_no_claim_event(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    made = (await _claim(api, node)).json()
    finished = await api.client.post(
        f"{_claims(api, node)}/{made['id']}/finish", json={"outcome": "failed"}
    )
    assert finished.status_code == 200, finished.text
    await _deactivate(api, node)
    assert "directive.claim_expired" not in [e["type"] for e in await api.events()]


async def test_a_lease_that_runs_out_says_so(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    await api.client.post(_claims(api, node), json={"agent_id": "a1", "lease_seconds": 5})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        expired = [e for e in await api.events() if e["type"] == "directive.claim_expired"]
        if expired:
            break
        await asyncio.sleep(0.1)
    [event] = expired
    assert (event["payload"]["reason"], event["actor"]) == ("lease", "charter:lease")


async def test_the_long_poll_never_offers_a_deactivated_directive(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    await _deactivate(api, node)
    # Once it is due and deactivated, the wait runs its length and offers nothing.
    started = time.monotonic()
    assert await _claimable(api, wait=1) == []
    assert time.monotonic() - started >= 0.9
    url = f"/v1/realms/{api.realm}/claims?agent_id=a1&wait=10"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with held_stream(api.client, url, admin, started=False) as poll:
        await asyncio.sleep(0.3)
        assert poll.status is None  # still waiting
        # A change to the node that leaves it deactivated wakes the wait, which waits on.
        await api.patch(await api.get(node["id"]), priority="high")
        await asyncio.sleep(0.3)
        assert poll.status is None
        reactivated_at = time.monotonic()
        await _rollback(api, node)
        answered_at = await poll.until_ended(5)
    assert poll.status == 200
    assert json.loads(poll.body)["claimable"] == [node["id"]]
    assert answered_at - reactivated_at < 2


async def test_a_wait_ends_empty_when_the_only_work_is_deactivated_meanwhile(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    made = (await _claim(api, node)).json()
    url = f"/v1/realms/{api.realm}/claims?agent_id=a1&wait=2"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with held_stream(api.client, url, admin, started=False) as poll:
        await asyncio.sleep(0.3)
        # Its claim is released by the deactivation, yet the directive is not work to offer.
        await _deactivate(api, node)
        await poll.until_ended(5)
    assert poll.status == 200
    answer = json.loads(poll.body)
    assert answer["claimable"] == []
    assert [(c["id"], c["state"]) for c in answer["items"]] == [(made["id"], "expired")]
