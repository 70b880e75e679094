"""Moves: a PATCH of parent_id, under the same hierarchy rules, never closing a cycle."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api
from tests.support.checks import (
    MAX_DEPTH,
    assert_problem,
    assert_unchanged,
    chain,
    other_realm,
    snapshot,
    versions_of,
)


async def _move(api: Api, node: dict[str, Any], parent_id: str | None) -> Any:
    return await api.client.patch(
        f"{api.base}/{node['id']}",
        json={"parent_id": parent_id},
        headers={"If-Match": f'"{node["revision"]}"'},
    )


async def _ancestry_ids(api: Api, directive_id: str) -> list[str]:
    response = await api.client.get(f"{api.base}/{directive_id}/ancestry")
    assert response.status_code == 200, response.text
    return [entry["id"] for entry in response.json()["ancestry"]]


async def test_move_changes_the_ancestry_of_the_whole_subtree(api: Api) -> None:
    old_root = await api.create(title="Old root")
    new_root = await api.create(title="New root")
    team = await api.child(old_root, title="Team", owner_agent_id="lead")
    agent = await api.child(team, level="agent", title="Agent", owner_agent_id="worker")
    events_before = len(await api.events())

    response = await _move(api, team, new_root["id"])
    assert response.status_code == 200, response.text
    moved = response.json()
    assert moved["changed"] is True
    assert moved["parent_id"] == new_root["id"]
    assert moved["revision"] == team["revision"] + 1
    assert moved["latest_version"] == 1
    assert len(await versions_of(api, team["id"])) == 1

    assert await _ancestry_ids(api, agent["id"]) == [agent["id"], team["id"], new_root["id"]]
    assert (await api.get(agent["id"]))["revision"] == agent["revision"]

    new_events = (await api.events())[events_before:]
    assert len(new_events) == 1
    event = new_events[0]
    assert event["type"] == "directive.moved"
    assert event["directive_id"] == team["id"]
    assert event["revision"] == moved["revision"]
    assert event["payload"] == {"from_parent_id": old_root["id"], "to_parent_id": new_root["id"]}
    assert event["affected_agents"] == ["lead", "worker"]


async def test_move_to_the_same_parent_is_a_no_op(api: Api) -> None:
    root = await api.create()
    team = await api.child(root)
    before = await snapshot(api, team["id"])
    response = await _move(api, team, root["id"])
    assert response.status_code == 200, response.text
    assert response.json()["changed"] is False
    await assert_unchanged(api, before)


async def test_move_under_itself_is_a_cycle(api: Api) -> None:
    root = await api.create()
    team = await api.child(root)
    before = await snapshot(api, team["id"])
    response = await _move(api, team, team["id"])
    assert_problem(response, 409, "cycle-detected")
    await assert_unchanged(api, before)


@pytest.mark.parametrize("depth_below", [1, 2, 3])
async def test_move_into_its_own_subtree_is_a_cycle(api: Api, depth_below: int) -> None:
    nodes = await chain(api, 1 + 1 + depth_below)
    team = nodes[1]
    before = await snapshot(api, team["id"])
    response = await _move(api, team, nodes[-1]["id"])
    assert_problem(response, 409, "cycle-detected")
    await assert_unchanged(api, before)
    assert await _ancestry_ids(api, nodes[-1]["id"]) == [n["id"] for n in reversed(nodes)]


async def test_realm_node_cannot_move_under_anything(api: Api) -> None:
    a = await api.create()
    b = await api.create()
    before = await snapshot(api, a["id"])
    response = await _move(api, a, b["id"])
    assert_problem(response, 422, "invalid-hierarchy")
    await assert_unchanged(api, before)


async def test_team_cannot_become_a_root(api: Api) -> None:
    root = await api.create()
    team = await api.child(root)
    before = await snapshot(api, team["id"])
    response = await _move(api, team, None)
    assert_problem(response, 422, "invalid-hierarchy")
    await assert_unchanged(api, before)


async def test_team_cannot_move_under_an_agent(api: Api) -> None:
    root = await api.create()
    team = await api.child(root)
    agent = await api.child(root, level="agent")
    before = await snapshot(api, team["id"])
    response = await _move(api, team, agent["id"])
    assert_problem(response, 422, "invalid-hierarchy")
    await assert_unchanged(api, before)


async def test_agent_can_move_between_levels_that_allow_it(api: Api) -> None:
    root = await api.create()
    team = await api.child(root)
    holder = await api.child(root, level="agent")
    agent = await api.child(team, level="agent")
    response = await _move(api, agent, holder["id"])
    assert response.status_code == 200, response.text
    agent = response.json()
    response = await _move(api, agent, root["id"])
    assert response.status_code == 200, response.text
    assert response.json()["revision"] == 3


async def test_move_to_a_parent_in_another_realm_is_422(api: Api) -> None:
    root = await api.create()
    team = await api.child(root)
    foreign = await (await other_realm(api)).create()
    before = await snapshot(api, team["id"])
    response = await _move(api, team, foreign["id"])
    assert_problem(response, 422, "invalid-hierarchy")
    await assert_unchanged(api, before)


async def test_move_to_a_missing_parent_is_422(api: Api) -> None:
    root = await api.create()
    team = await api.child(root)
    before = await snapshot(api, team["id"])
    response = await _move(api, team, "dir_" + "0" * 26)
    assert_problem(response, 422, "invalid-hierarchy")
    await assert_unchanged(api, before)


async def test_move_that_would_exceed_the_depth_limit_is_422(api: Api) -> None:
    deep = await chain(api, MAX_DEPTH - 1)
    root = await api.create()
    team = await api.child(root)
    await api.child(team)  # the moved subtree is two levels tall
    before = await snapshot(api, team["id"])
    response = await _move(api, team, deep[-1]["id"])
    assert_problem(response, 422, "invalid-hierarchy")
    await assert_unchanged(api, before)
    # Under a node one level higher it fits exactly.
    response = await _move(api, team, deep[-2]["id"])
    assert response.status_code == 200, response.text
    leaf_depth = len(await _ancestry_ids(api, response.json()["id"])) + 1
    assert leaf_depth == MAX_DEPTH


async def test_move_combined_with_other_changes_writes_each_event(api: Api) -> None:
    a = await api.create()
    b = await api.create()
    team = await api.child(a)
    events_before = len(await api.events())
    response = await api.client.patch(
        f"{api.base}/{team['id']}",
        json={"parent_id": b["id"], "title": "Renamed", "priority": "low"},
        headers={"If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.json()["revision"] == 2
    types = [e["type"] for e in (await api.events())[events_before:]]
    assert types == ["directive.version_created", "directive.updated", "directive.moved"]
