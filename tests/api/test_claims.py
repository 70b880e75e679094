"""Claims (§10): take, refuse, heartbeat, finish, and the events of each step."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.api import ADMIN_KEY, Api
from tests.support.checks import assert_problem, assert_unchanged, if_match, snapshot
from tests.support.streams import held_stream


def _claims(api: Api, node: dict[str, Any]) -> str:
    return f"{api.base}/{node['id']}/claims"


async def _claim(api: Api, node: dict[str, Any], agent: str = "a1", **extra: Any) -> Any:
    return await api.client.post(
        _claims(api, node), json={"agent_id": agent, "lease_seconds": 30, **extra}
    )


async def _types(api: Api) -> list[str]:
    return [e["type"] for e in await api.events()]


async def test_a_claim_is_made_once_and_refused_while_live(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    first = await _claim(api, node)
    assert first.status_code == 201, first.text
    made = first.json()
    assert made["id"].startswith("clm_")
    assert (made["agent_id"], made["attempt"], made["state"]) == ("a1", 1, "live")
    assert datetime.fromisoformat(made["expires_at"]) > datetime.now(UTC) + timedelta(seconds=25)
    second = assert_problem(await _claim(api, node, agent="a2"), 409, "already-claimed")
    assert second["holder"] == "a1"
    assert second["expires_at"] == datetime.fromisoformat(made["expires_at"]).isoformat()
    claimed = [e for e in await api.events() if e["type"] == "directive.claimed"]
    assert len(claimed) == 1
    assert claimed[0]["payload"]["claim_id"] == made["id"]
    assert claimed[0]["affected_agents"] == []
    # The directive itself is unchanged: a claim is not a change of the node.
    assert (await api.get(node["id"]))["revision"] == node["revision"]


async def test_paused_and_not_yet_due_directives_are_not_due(api: Api) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    node = await api.create(not_before=later.isoformat())
    assert datetime.fromisoformat(node["not_before"]) == later
    problem = assert_problem(await _claim(api, node), 409, "not-due")
    assert "not_before" in problem
    paused = await api.create(status="paused")
    assert_problem(await _claim(api, paused), 409, "not-due")
    node = await api.patch(node, not_before=None)
    assert node["not_before"] is None
    assert (await _claim(api, node)).status_code == 201
    assert "directive.claimed" in await _types(api)


@pytest.mark.parametrize("instant", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
async def test_a_not_before_outside_utc_is_refused(api: Api, instant: str) -> None:
    body = {"level": "realm", "title": "t", "body": "b", "not_before": instant}
    assert_problem(await api.client.post(api.base, json=body), 400, "invalid-request")
    node = await api.create()
    patched = await api.client.patch(
        f"{api.base}/{node['id']}", json={"not_before": instant}, headers=if_match(1)
    )
    assert_problem(patched, 400, "invalid-request")
    assert (await api.get(node["id"]))["revision"] == 1


async def test_a_terminal_directive_is_claimed_only_with_rerun(api: Api) -> None:
    node = await api.create()
    node = await api.patch(node, status="completed")
    assert_problem(await _claim(api, node), 409, "invalid-transition")
    again = await _claim(api, node, rerun=True)
    assert again.status_code == 201, again.text
    reopened = await api.get(node["id"])
    assert (reopened["status"], reopened["revision"]) == ("active", node["revision"] + 1)
    assert (await _types(api))[-2:] == ["directive.status_changed", "directive.claimed"]


async def test_heartbeat_extends_the_lease(api: Api) -> None:
    node = await api.create()
    made = (
        await api.client.post(_claims(api, node), json={"agent_id": "a1", "lease_seconds": 5})
    ).json()
    await asyncio.sleep(0.05)
    beat = await api.client.post(
        f"{_claims(api, node)}/{made['id']}/heartbeat", json={"lease_seconds": 60}
    )
    assert beat.status_code == 200, beat.text
    assert datetime.fromisoformat(beat.json()["expires_at"]) > datetime.fromisoformat(
        made["expires_at"]
    ) + timedelta(seconds=50)
    plain = await api.client.post(f"{_claims(api, node)}/{made['id']}/heartbeat")
    assert plain.status_code == 200, plain.text
    assert "directive.claim_expired" not in await _types(api)


async def test_succeeded_completes_and_a_repeat_is_reused(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    made = (await _claim(api, node)).json()
    url = f"{_claims(api, node)}/{made['id']}/finish"
    body = {"outcome": "succeeded", "result": {"rows": 3, "note": "secret-result"}}
    done = await api.client.post(url, json=body)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert (answer["changed"], answer["reused"], answer["status"]) == (True, False, "completed")
    assert answer["claim"]["state"] == "succeeded"
    assert answer["claim"]["result"] == body["result"]
    again = (await api.client.post(url, json=body)).json()
    assert (again["changed"], again["reused"]) == (False, True)
    other = await api.client.post(url, json={"outcome": "failed"})
    assert_problem(other, 409, "invalid-transition")
    feed = await api.events()
    assert [e["type"] for e in feed][-2:] == ["directive.status_changed", "directive.succeeded"]
    assert "secret-result" not in str(feed)
    assert [e["type"] for e in feed].count("directive.succeeded") == 1


async def test_succeeded_under_open_children_needs_cascade(api: Api) -> None:
    root = await api.create()
    child = await api.child(root)
    made = (await _claim(api, root)).json()
    url = f"{_claims(api, root)}/{made['id']}/finish"
    assert_problem(
        await api.client.post(url, json={"outcome": "succeeded"}), 409, "has-open-children"
    )
    done = await api.client.post(url, json={"outcome": "succeeded", "cascade": True})
    assert done.status_code == 200, done.text
    assert (await api.get(child["id"]))["status"] == "completed"


async def test_failed_records_last_failure_and_keeps_it_active(api: Api) -> None:
    node = await api.create()
    made = (await _claim(api, node)).json()
    url = f"{_claims(api, node)}/{made['id']}/finish"
    done = await api.client.post(url, json={"outcome": "failed", "error_code": "timeout"})
    assert done.status_code == 200, done.text
    after = await api.get(node["id"])
    assert after["status"] == "active"
    assert after["last_failure"]["code"] == "timeout"
    assert datetime.fromisoformat(after["last_failure"]["at"]) <= datetime.now(UTC)
    failed = [e for e in await api.events() if e["type"] == "directive.failed"]
    assert failed[0]["payload"]["error_code"] == "timeout"
    # Free again: the next claim is attempt 2.
    assert (await _claim(api, node)).json()["attempt"] == 2


async def test_a_result_over_8_kib_is_refused(api: Api) -> None:
    node = await api.create()
    made = (await _claim(api, node)).json()
    url = f"{_claims(api, node)}/{made['id']}/finish"
    big = {"outcome": "failed", "result": "x" * 9000}
    assert_problem(await api.client.post(url, json=big), 400, "invalid-request")
    listed = await api.client.get(f"/v1/realms/{api.realm}/claims", params={"state": "live"})
    assert [c["id"] for c in listed.json()["items"]] == [made["id"]]


async def test_bad_claims_are_refused(api: Api) -> None:
    node = await api.create()
    for body in (
        {"agent_id": "a1", "lease_seconds": 4},
        {"agent_id": "a1", "lease_seconds": 3601},
        {"agent_id": "a 1", "lease_seconds": 30},
        {"agent_id": "a1"},
        {"agent_id": "a1", "lease_seconds": 30, "extra": 1},
    ):
        assert_problem(await api.client.post(_claims(api, node), json=body), 400, "invalid-request")
    missing = f"{api.base}/dir_00000000000000000000000000/claims"
    assert_problem(
        await api.client.post(missing, json={"agent_id": "a", "lease_seconds": 5}), 404, "not-found"
    )
    bad = f"{_claims(api, node)}/clm_nope/heartbeat"
    assert_problem(await api.client.post(bad), 400, "invalid-request")
    unknown = f"{_claims(api, node)}/clm_00000000000000000000000000/finish"
    assert_problem(await api.client.post(unknown, json={"outcome": "failed"}), 404, "not-found")
    assert "directive.claimed" not in await _types(api)


async def _agent_key(client: AsyncTestClient[Litestar], realm: str, agent: str) -> str:
    made = await client.post(
        "/v1/keys", json={"role": "agent", "realms": [realm], "agent_id": agent}
    )
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


async def test_an_agent_key_claims_only_as_itself(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    key = {"Authorization": f"Bearer {await _agent_key(api.client, api.realm, 'a1')}"}
    other = {"Authorization": f"Bearer {await _agent_key(api.client, api.realm, 'a2')}"}
    body = {"agent_id": "a1", "lease_seconds": 30}
    refused = await api.client.post(_claims(api, node), json=body, headers=other)
    assert_problem(refused, 403, "forbidden")
    made = await api.client.post(_claims(api, node), json=body, headers=key)
    assert made.status_code == 201, made.text
    beat = f"{_claims(api, node)}/{made.json()['id']}/heartbeat"
    assert_problem(await api.client.post(beat, headers=other), 403, "forbidden")
    assert (await api.client.post(beat, headers=key)).status_code == 200
    mine = await api.client.get(f"/v1/realms/{api.realm}/claims", headers=key)
    assert [c["agent_id"] for c in mine.json()["items"]] == ["a1"]
    theirs = await api.client.get(
        f"/v1/realms/{api.realm}/claims", params={"agent_id": "a1"}, headers=other
    )
    assert_problem(theirs, 403, "forbidden")


async def test_an_agent_key_claims_only_its_own_agents_directives(api: Api) -> None:
    """Else an agent key, which may write nothing, could close the realm's root and every
    directive under it (claim it, finish succeeded with cascade), or reopen any with rerun."""
    root = await api.create()
    theirs = await api.child(root, level="agent", owner_agent_id="a2")
    done = await api.patch(
        await api.child(root, level="agent", owner_agent_id="a2"), status="completed"
    )
    key = {"Authorization": f"Bearer {await _agent_key(api.client, api.realm, 'a1')}"}
    before = await snapshot(api, root["id"])
    for node, extra in ((root, {}), (theirs, {}), (done, {"rerun": True})):
        body = {"agent_id": "a1", "lease_seconds": 30, **extra}
        refused = await api.client.post(_claims(api, node), json=body, headers=key)
        assert_problem(refused, 403, "forbidden")
    await assert_unchanged(api, before)
    assert (await api.get(done["id"]))["status"] == "completed"
    mine = await api.child(root, level="agent", owner_agent_id="a1")
    made = await api.client.post(
        _claims(api, mine), json={"agent_id": "a1", "lease_seconds": 30}, headers=key
    )
    assert made.status_code == 201, made.text
    assert (await _claim(api, theirs)).status_code == 201  # an operator's claim for a1 stands


async def test_the_agents_list_shows_live_claims_and_the_prompt_does_not(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    before = (await api.client.get(f"/v1/realms/{api.realm}/agents/a1/prompt")).json()
    made = (await _claim(api, node)).json()
    agents = (await api.client.get(f"/v1/realms/{api.realm}/agents")).json()["items"]
    assert [c["id"] for c in agents[0]["claims"]] == [made["id"]]
    after = (await api.client.get(f"/v1/realms/{api.realm}/agents/a1/prompt")).json()
    assert after == before


async def test_claimable_work_is_listed_and_waited_for(api: Api) -> None:
    node = await api.create(owner_agent_id="a1", status="paused")
    url = f"/v1/realms/{api.realm}/claims"
    assert (await api.client.get(url, params={"agent_id": "a1"})).json()["claimable"] == []
    waiting = f"{url}?agent_id=a1&wait=10"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with held_stream(api.client, waiting, admin, started=False) as poll:
        await asyncio.sleep(0.3)
        assert poll.status is None  # still waiting: nothing is claimable
        resumed_at = time.monotonic()
        await api.patch(node, status="active")
        answered_at = await poll.until_ended(5)
    assert poll.status == 200
    assert json.loads(poll.body)["claimable"] == [node["id"]]
    assert answered_at - resumed_at < 2
    await _claim(api, await api.get(node["id"]))
    empty = await api.client.get(url, params={"agent_id": "a1", "wait": 1})
    assert empty.json()["claimable"] == []
    assert_problem(await api.client.get(url, params={"wait": 1}), 400, "invalid-request")


async def test_waiting_ends_when_not_before_passes(api: Api) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=0.5)
    node = await api.create(owner_agent_id="a1", not_before=soon.isoformat())
    url = f"/v1/realms/{api.realm}/claims"
    waited = await api.client.get(url, params={"agent_id": "a1", "wait": 5})
    assert waited.json()["claimable"] == [node["id"]]
    assert datetime.now(UTC) - soon < timedelta(seconds=1)


async def test_a_lease_that_runs_out_is_released_once(api: Api) -> None:
    node = await api.create(owner_agent_id="a1")
    made = (
        await api.client.post(_claims(api, node), json={"agent_id": "a1", "lease_seconds": 5})
    ).json()
    expires = datetime.fromisoformat(made["expires_at"])
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        expired = [e for e in await api.events() if e["type"] == "directive.claim_expired"]
        if expired or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert len(expired) == 1
    late = datetime.fromisoformat(expired[0]["occurred_at"]) - expires
    assert timedelta(0) <= late < timedelta(seconds=1)
    assert expired[0]["actor"] == "charter:lease"
    url = f"{_claims(api, node)}/{made['id']}"
    assert_problem(await api.client.post(f"{url}/heartbeat"), 409, "invalid-transition")
    next_claim = (await _claim(api, node, agent="a2")).json()
    assert next_claim["attempt"] == 2
    listed = await api.client.get(f"/v1/realms/{api.realm}/claims", params={"state": "expired"})
    assert [c["id"] for c in listed.json()["items"]] == [made["id"]]


async def test_a_retried_claim_with_its_idempotency_key_replays_the_same_claim(api: Api) -> None:
    node = await api.create()
    body = {"agent_id": "a1", "lease_seconds": 30}
    headers = {"Idempotency-Key": "claim-once"}
    first = await api.client.post(_claims(api, node), json=body, headers=headers)
    again = await api.client.post(_claims(api, node), json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert (await _types(api)).count("directive.claimed") == 1
