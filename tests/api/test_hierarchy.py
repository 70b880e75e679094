"""Hierarchy rules on create: levels, parents in the same realm, the depth limit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api
from tests.support.checks import MAX_DEPTH, assert_problem, chain, other_realm, realm_revision


async def _post(api: Api, **fields: Any) -> Any:
    body = {"title": "T", "body": "B", **fields}
    return await api.client.post(api.base, json=body)


async def test_realm_node_is_a_root(api: Api) -> None:
    node = await api.create(level="realm")
    assert node["parent_id"] is None
    assert node["level"] == "realm"


@pytest.mark.parametrize(
    ("parent_level", "level"),
    [
        ("realm", "team"),
        ("team", "team"),
        ("realm", "agent"),
        ("team", "agent"),
        ("agent", "agent"),
    ],
)
async def test_allowed_parent_levels(api: Api, parent_level: str, level: str) -> None:
    root = await api.create()
    parent = root if parent_level == "realm" else await api.child(root, level=parent_level)
    node = await api.child(parent, level=level)
    assert (node["level"], node["parent_id"]) == (level, parent["id"])


@pytest.mark.parametrize(
    ("parent_level", "level"),
    [("realm", "realm"), ("team", "realm"), ("agent", "realm"), ("agent", "team")],
)
async def test_forbidden_parent_levels_are_422(api: Api, parent_level: str, level: str) -> None:
    root = await api.create()
    parent = root if parent_level == "realm" else await api.child(root, level=parent_level)
    revision = await realm_revision(api)
    response = await _post(api, level=level, parent_id=parent["id"])
    assert_problem(response, 422, "invalid-hierarchy")
    assert await realm_revision(api) == revision


@pytest.mark.parametrize("level", ["team", "agent"])
async def test_team_and_agent_nodes_need_a_parent(api: Api, level: str) -> None:
    response = await _post(api, level=level)
    assert_problem(response, 422, "invalid-hierarchy")
    assert await api.events() == []


async def test_missing_parent_is_422(api: Api) -> None:
    response = await _post(api, level="team", parent_id="dir_" + "0" * 26)
    assert_problem(response, 422, "invalid-hierarchy")
    assert await api.events() == []


async def test_parent_in_another_realm_is_422(api: Api) -> None:
    elsewhere = await other_realm(api)
    foreign = await elsewhere.create()
    response = await _post(api, level="team", parent_id=foreign["id"])
    assert_problem(response, 422, "invalid-hierarchy")
    assert await api.events() == []
    assert [e["type"] for e in await elsewhere.events()] == ["directive.created"]


async def test_malformed_parent_id_is_400(api: Api) -> None:
    response = await _post(api, level="team", parent_id="not-an-id")
    assert_problem(response, 400, "invalid-request")


async def test_depth_limit_allows_sixteen_and_refuses_seventeen(api: Api) -> None:
    nodes = await chain(api, MAX_DEPTH)
    ancestry = await api.client.get(f"{api.base}/{nodes[-1]['id']}/ancestry")
    assert ancestry.json()["depth"] == MAX_DEPTH
    revision = await realm_revision(api)
    response = await _post(api, level="agent", parent_id=nodes[-1]["id"])
    assert_problem(response, 422, "invalid-hierarchy")
    assert await realm_revision(api) == revision
    # One level up there is still room.
    await api.child(nodes[-2], level="agent")


async def test_created_node_reports_its_parent_and_defaults(api: Api) -> None:
    root = await api.create()
    response = await _post(api, level="team", parent_id=root["id"])
    assert response.status_code == 201, response.text
    node = response.json()
    assert response.headers["Location"] == f"{api.base}/{node['id']}"
    assert response.headers["ETag"] == '"1"'
    assert node["id"].startswith("dir_")
    assert node["realm_id"] == api.realm
    assert node["parent_id"] == root["id"]
    assert (node["status"], node["priority"], node["injection_mode"]) == (
        "active",
        "normal",
        "system_first",
    )
    assert (node["revision"], node["active_version"], node["latest_version"]) == (1, 1, 1)
    assert node["metadata"] == {}
    assert node["key"] is None
    assert node["owner_agent_id"] is None
    assert "changed" not in node
