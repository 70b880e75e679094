"""Schedules (§8): made, listed, cancelled, and run once within a second of their time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.api import Api
from tests.support.checks import assert_problem
from tests.support.rollouts import put_rollout


def _url(api: Api, node: dict[str, Any]) -> str:
    return f"{api.base}/{node['id']}/schedules"


async def _settled(api: Api, node: dict[str, Any], sid: str, seconds: float = 5) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        items = (await api.client.get(_url(api, node))).json()["items"]
        found: dict[str, Any] = next(s for s in items if s["id"] == sid)
        if found["state"] != "pending" or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


def _soon(seconds: float = 0.5) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_a_status_schedule_runs_once_within_a_second(api: Api) -> None:
    node = await api.create()
    at = _soon()
    made = await api.client.post(_url(api, node), json={"at": at, "action": {"status": "paused"}})
    assert made.status_code == 201, made.text
    sid = made.json()["id"]
    assert sid.startswith("sch_")
    assert made.json()["state"] == "pending"
    ran = await _settled(api, node, sid)
    assert ran["state"] == "done", ran
    late = datetime.fromisoformat(ran["ran_at"]) - datetime.fromisoformat(at)
    assert timedelta(0) <= late < timedelta(seconds=1)
    after = await api.get(node["id"])
    assert (after["status"], after["revision"]) == ("paused", node["revision"] + 1)
    changes = [e for e in await api.events() if e["type"] == "directive.status_changed"]
    assert [e["actor"] for e in changes] == [f"schedule:{sid}"]


async def test_an_activate_schedule_moves_the_active_version(api: Api) -> None:
    node = await api.create()
    node = await api.patch(node, body="second")
    made = await api.client.post(
        _url(api, node), json={"at": _soon(0.1), "action": {"activate": 1}}
    )
    ran = await _settled(api, node, made.json()["id"])
    assert ran["state"] == "done", ran
    assert (await api.get(node["id"]))["active_version"] == 1


async def test_a_stale_expected_revision_fails_and_writes_nothing_else(api: Api) -> None:
    node = await api.create()
    body = {"at": _soon(0.3), "action": {"status": "paused"}, "expected_revision": node["revision"]}
    made = (await api.client.post(_url(api, node), json=body)).json()
    node = await api.patch(node, priority="high")
    ran = await _settled(api, node, made["id"])
    assert (ran["state"], ran["reason"]) == ("failed", "stale-revision")
    after = await api.get(node["id"])
    assert (after["status"], after["revision"]) == ("active", node["revision"])
    failed = [e for e in await api.events() if e["type"] == "schedule.failed"]
    assert [e["payload"]["reason"] for e in failed] == ["stale-revision"]


async def test_a_refused_action_fails_with_its_code(api: Api) -> None:
    node = await api.create()
    node = await api.patch(node, status="completed")
    made = (
        await api.client.post(
            _url(api, node), json={"at": _soon(0.1), "action": {"status": "paused"}}
        )
    ).json()
    ran = await _settled(api, node, made["id"])
    assert (ran["state"], ran["reason"]) == ("failed", "invalid-transition")
    assert (await api.get(node["id"]))["revision"] == node["revision"]


async def test_a_rollout_schedule_changes_the_percent_then_a_promote_ends_it(api: Api) -> None:
    node = await api.create()
    node = await api.patch(node, body="candidate", activate=False)
    node = await put_rollout(api, node, version=2, percent=10)
    rollout_id = node["rollout"]["id"]
    raise_to = {"at": _soon(0.1), "action": {"rollout": {"percent": 50}}}
    raised = (await api.client.post(_url(api, node), json=raise_to)).json()
    assert (await _settled(api, node, raised["id"]))["state"] == "done"
    node = await api.get(node["id"])
    assert (node["rollout"]["id"], node["rollout"]["percent"]) == (rollout_id, 50)
    assert node["active_version"] == 1
    promote = {"at": _soon(0.1), "action": {"promote": True}}
    made = (await api.client.post(_url(api, node), json=promote)).json()
    assert (await _settled(api, node, made["id"]))["state"] == "done"
    node = await api.get(node["id"])
    assert (node["active_version"], node["rollout"]) == (2, None)
    actors = {e["type"]: e["actor"] for e in await api.events()}
    assert actors["directive.rollout_changed"] == f"schedule:{raised['id']}"
    assert actors["directive.rollout_promoted"] == f"schedule:{made['id']}"


@pytest.mark.parametrize("action", [{"rollout": {"percent": 12.5}}, {"promote": True}])
async def test_a_rollout_action_without_a_running_rollout_fails_and_writes_nothing(
    api: Api, action: dict[str, Any]
) -> None:
    node = await api.create()
    made = (
        await api.client.post(_url(api, node), json={"at": _soon(0.1), "action": action})
    ).json()
    assert made["action"] == action
    ran = await _settled(api, node, made["id"])
    assert (ran["state"], ran["reason"]) == ("failed", "not-found")
    assert (await api.get(node["id"]))["revision"] == node["revision"]


async def test_a_pending_schedule_is_cancelled_and_never_runs(api: Api) -> None:
    node = await api.create()
    made = (
        await api.client.post(
            _url(api, node), json={"at": _soon(1.0), "action": {"status": "paused"}}
        )
    ).json()
    cancel = await api.client.delete(f"{_url(api, node)}/{made['id']}")
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["state"] == "cancelled"
    again = await api.client.delete(f"{_url(api, node)}/{made['id']}")
    assert_problem(again, 409, "invalid-transition")
    await asyncio.sleep(1.5)
    assert (await api.get(node["id"]))["status"] == "active"
    types = [e["type"] for e in await api.events()]
    assert types.count("schedule.cancelled") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"at": "2030-01-01T00:00:00", "action": {"status": "paused"}},
        {"at": "2030-01-01T00:00:00Z", "action": {"status": "asleep"}},
        {"at": "2030-01-01T00:00:00Z", "action": {"activate": 0}},
        {"at": "2030-01-01T00:00:00Z", "action": {"activate": True}},
        {"at": "2030-01-01T00:00:00Z", "action": {"rollout": {"percent": 101}}},
        {"at": "2030-01-01T00:00:00Z", "action": {"rollout": {"percent": 1.234}}},
        {"at": "2030-01-01T00:00:00Z", "action": {"promote": False}},
        {"at": "2030-01-01T00:00:00Z", "action": {"status": "paused", "activate": 2}},
        {"at": "2030-01-01T00:00:00Z", "action": {}},
        {"at": "2030-01-01T00:00:00Z", "action": {"status": ["paused"]}},
        {"at": "2030-01-01T00:00:00Z", "action": {"status": {"a": 1}}},
        {"at": "2030-01-01T00:00:00Z", "action": {"activate": 2**31}},
        {"at": "2030-01-01T00:00:00Z", "action": {"rollout": {"percent": True}}},
        {"at": "2030-01-01T00:00:00Z", "action": {"rollout": [1]}},
        {"at": "2030-01-01T00:00:00Z", "action": {"promote": True}, "expected_revision": 2**63},
        {"at": "not a time", "action": {"promote": True}},
        # Past the last instant in UTC, or before the first: a 500 once converted.
        {"at": "9999-12-31T23:59:59-23:59", "action": {"promote": True}},
        {"at": "0001-01-01T00:00:00+23:59", "action": {"promote": True}},
        {"at": "2030-01-01T00:00:00Z", "action": [1]},
        {"at": "2030-01-01T00:00:00Z", "action": {"status": "paused"}, "expected_revision": 0},
    ],
)
async def test_bad_schedules_are_refused(api: Api, body: dict[str, Any]) -> None:
    node = await api.create()
    assert_problem(await api.client.post(_url(api, node), json=body), 400, "invalid-request")
    assert (await api.client.get(_url(api, node))).json()["items"] == []
