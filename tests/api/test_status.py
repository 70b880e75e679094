"""Status rules: active ⇄ paused, terminal states, reopen, open children and cascade."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api
from tests.support.checks import assert_problem, assert_unchanged, realm_revision, snapshot


async def _raw_patch(api: Api, node: dict[str, Any], **fields: Any) -> Any:
    return await api.client.patch(
        f"{api.base}/{node['id']}", json=fields, headers={"If-Match": f'"{node["revision"]}"'}
    )


async def test_active_and_paused_go_both_ways(api: Api) -> None:
    node = await api.create()
    node = await api.patch(node, status="paused")
    assert (node["status"], node["revision"], node["changed"]) == ("paused", 2, True)
    node = await api.patch(node, status="active")
    assert (node["status"], node["revision"]) == ("active", 3)
    changes = [e for e in await api.events() if e["type"] == "directive.status_changed"]
    assert [e["payload"] for e in changes] == [
        {"from": "active", "to": "paused"},
        {"from": "paused", "to": "active"},
    ]
    assert [e["revision"] for e in changes] == [2, 3]


async def test_a_node_may_be_created_paused(api: Api) -> None:
    node = await api.create(status="paused")
    assert node["status"] == "paused"


@pytest.mark.parametrize("status", ["completed", "cancelled"])
async def test_a_node_cannot_be_created_terminal(api: Api, status: str) -> None:
    response = await api.client.post(
        api.base, json={"level": "realm", "title": "T", "body": "B", "status": status}
    )
    assert_problem(response, 400, "invalid-request")
    assert await api.events() == []


@pytest.mark.parametrize("start", ["active", "paused"])
@pytest.mark.parametrize("target", ["completed", "cancelled"])
async def test_open_nodes_can_be_closed(api: Api, start: str, target: str) -> None:
    node = await api.create(status=start)
    node = await api.patch(node, status=target)
    assert node["status"] == target
    assert node["revision"] == 2


@pytest.mark.parametrize("terminal", ["completed", "cancelled"])
async def test_terminal_node_needs_reopen_to_go_active(api: Api, terminal: str) -> None:
    node = await api.patch(await api.create(), status=terminal)
    before = await snapshot(api, node["id"])
    response = await _raw_patch(api, node, status="active")
    assert_problem(response, 409, "invalid-transition")
    await assert_unchanged(api, before)

    reopened = await api.patch(node, status="active", reopen=True)
    assert reopened["status"] == "active"
    assert reopened["revision"] == node["revision"] + 1
    event = (await api.events())[-1]
    assert event["type"] == "directive.status_changed"
    assert event["payload"] == {"from": terminal, "to": "active"}


@pytest.mark.parametrize(
    ("terminal", "target"),
    [
        ("completed", "paused"),
        ("cancelled", "paused"),
        ("completed", "cancelled"),
        ("cancelled", "completed"),
    ],
)
@pytest.mark.parametrize("reopen", [False, True])
async def test_terminal_node_goes_nowhere_but_active(
    api: Api, terminal: str, target: str, reopen: bool
) -> None:
    node = await api.patch(await api.create(), status=terminal)
    before = await snapshot(api, node["id"])
    response = await _raw_patch(api, node, status=target, reopen=reopen)
    assert_problem(response, 409, "invalid-transition")
    await assert_unchanged(api, before)


async def test_setting_the_same_terminal_status_is_a_no_op(api: Api) -> None:
    node = await api.patch(await api.create(), status="completed")
    before = await snapshot(api, node["id"])
    result = await api.patch(node, status="completed")
    assert result["changed"] is False
    await assert_unchanged(api, before)


async def test_terminal_node_still_takes_content_and_attribute_changes(api: Api) -> None:
    node = await api.patch(await api.create(), status="cancelled")
    node = await api.patch(node, body="Revised", priority="low")
    assert (node["status"], node["body"], node["priority"]) == ("cancelled", "Revised", "low")


@pytest.mark.parametrize("target", ["completed", "cancelled"])
async def test_closing_a_parent_with_open_children_is_refused(api: Api, target: str) -> None:
    root = await api.create()
    await api.child(root)
    before = await snapshot(api, root["id"])
    response = await _raw_patch(api, root, status=target)
    assert_problem(response, 409, "has-open-children")
    await assert_unchanged(api, before)


async def test_open_grandchild_under_a_closed_child_blocks_closing(api: Api) -> None:
    root = await api.create()
    team = await api.child(root)
    agent = await api.child(team, level="agent")
    await api.patch(team, status="completed", cascade=True)
    await api.patch(await api.get(agent["id"]), status="active", reopen=True)
    assert (await api.get(team["id"]))["status"] == "completed"
    before = await snapshot(api, root["id"])
    response = await _raw_patch(api, root, status="cancelled")
    problem = assert_problem(response, 409, "has-open-children")
    assert "1 descendant" in problem["detail"]
    await assert_unchanged(api, before)


async def test_parent_with_only_terminal_children_can_close(api: Api) -> None:
    root = await api.create()
    a = await api.child(root)
    b = await api.child(root)
    await api.patch(a, status="completed")
    await api.patch(b, status="cancelled")
    closed = await api.patch(await api.get(root["id"]), status="completed")
    assert closed["status"] == "completed"


async def test_pausing_a_parent_leaves_children_alone(api: Api) -> None:
    root = await api.create()
    child = await api.child(root)
    paused = await api.patch(root, status="paused", cascade=True)
    assert paused["status"] == "paused"
    assert await api.get(child["id"]) == child


async def test_cascade_closes_every_open_descendant(api: Api) -> None:
    root = await api.create(title="Root")
    team = await api.child(root, title="Team", owner_agent_id="lead")
    agent = await api.child(team, level="agent", title="Agent", owner_agent_id="worker")
    paused = await api.patch(await api.child(root, level="agent", title="Paused"), status="paused")
    done = await api.patch(await api.child(root, level="agent", title="Done"), status="cancelled")
    realm_before = await realm_revision(api)
    events_before = len(await api.events())

    result = await api.patch(root, status="completed", cascade=True, message="wrap up")
    assert result["status"] == "completed"
    assert result["revision"] == root["revision"] + 1

    for node in (team, agent, paused):
        found = await api.get(node["id"])
        assert found["status"] == "completed"
        assert found["revision"] == node["revision"] + 1
    untouched = await api.get(done["id"])
    assert (untouched["status"], untouched["revision"]) == ("cancelled", done["revision"])

    new_events = (await api.events())[events_before:]
    assert all(e["type"] == "directive.status_changed" for e in new_events)
    by_node = {e["directive_id"]: e for e in new_events}
    assert len(new_events) == len(by_node) == 4
    assert set(by_node) == {root["id"], team["id"], agent["id"], paused["id"]}
    assert by_node[root["id"]]["payload"] == {"from": "active", "to": "completed"}
    assert by_node[paused["id"]]["payload"] == {
        "from": "paused",
        "to": "completed",
        "cascade_from": root["id"],
    }
    for node in (team, agent, paused):
        assert by_node[node["id"]]["revision"] == node["revision"] + 1
    assert by_node[team["id"]]["affected_agents"] == ["lead", "worker"]
    assert by_node[agent["id"]]["affected_agents"] == ["worker"]
    assert [e["seq"] for e in new_events] == list(range(realm_before + 1, realm_before + 5))
    assert await realm_revision(api) == realm_before + 4


async def test_cascade_without_open_descendants_writes_one_event(api: Api) -> None:
    root = await api.create()
    events_before = len(await api.events())
    await api.patch(root, status="cancelled", cascade=True)
    new_events = (await api.events())[events_before:]
    assert [e["directive_id"] for e in new_events] == [root["id"]]


async def test_reopening_a_parent_does_not_reopen_its_children(api: Api) -> None:
    root = await api.create()
    child = await api.child(root)
    closed = await api.patch(root, status="completed", cascade=True)
    await api.patch(closed, status="active", reopen=True)
    assert (await api.get(child["id"]))["status"] == "completed"


@pytest.mark.parametrize("status", ["done", "ACTIVE", 1])
async def test_unknown_status_is_400(api: Api, status: object) -> None:
    node = await api.create()
    before = await snapshot(api, node["id"])
    response = await _raw_patch(api, node, status=status)
    assert_problem(response, 400, "invalid-request")
    await assert_unchanged(api, before)
