"""Listing directives: every filter of §2 and keyset pagination."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api
from tests.support.checks import assert_problem


async def _list(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.client.get(api.base, params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def _titles(api: Api, **params: Any) -> set[str]:
    return {item["title"] for item in (await _list(api, limit=500, **params))["items"]}


async def _sample(api: Api) -> dict[str, dict[str, Any]]:
    root = await api.create(title="Root", key="root", owner_agent_id="boss")
    other = await api.create(title="Other root", priority="low", status="paused")
    team = await api.child(root, title="Team", priority="high", owner_agent_id="lead")
    agent = await api.child(team, level="agent", title="Agent", owner_agent_id="lead", key="a.1")
    done = await api.child(root, level="agent", title="Done", priority="critical")
    done = await api.patch(done, status="completed")
    return {"root": root, "other": other, "team": team, "agent": agent, "done": done}


async def test_list_without_filters_returns_every_node_without_bodies(api: Api) -> None:
    await _sample(api)
    page = await _list(api)
    assert {i["title"] for i in page["items"]} == {"Root", "Other root", "Team", "Agent", "Done"}
    assert page["next_cursor"] is None
    assert all("body" not in item for item in page["items"])
    ids = [item["id"] for item in page["items"]]
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"level": "realm"}, {"Root", "Other root"}),
        ({"level": "team"}, {"Team"}),
        ({"level": "agent"}, {"Agent", "Done"}),
        ({"status": "active"}, {"Root", "Team", "Agent"}),
        ({"status": "paused"}, {"Other root"}),
        ({"status": "completed"}, {"Done"}),
        ({"status": "cancelled"}, set()),
        ({"priority": "critical"}, {"Done"}),
        ({"priority": "high"}, {"Team"}),
        ({"priority": "normal"}, {"Root", "Agent"}),
        ({"priority": "low"}, {"Other root"}),
        ({"owner_agent_id": "lead"}, {"Team", "Agent"}),
        ({"owner_agent_id": "boss"}, {"Root"}),
        ({"owner_agent_id": "nobody"}, set()),
        ({"key": "root"}, {"Root"}),
        ({"key": "a.1"}, {"Agent"}),
        ({"key": "nope"}, set()),
        ({"roots": "true"}, {"Root", "Other root"}),
        ({"roots": "false"}, {"Root", "Other root", "Team", "Agent", "Done"}),
        ({"level": "agent", "status": "active"}, {"Agent"}),
        ({"owner_agent_id": "lead", "level": "team"}, {"Team"}),
        ({"roots": "true", "status": "paused"}, {"Other root"}),
    ],
)
async def test_list_filters(api: Api, params: dict[str, str], expected: set[str]) -> None:
    await _sample(api)
    assert await _titles(api, **params) == expected


async def test_list_filters_by_parent(api: Api) -> None:
    nodes = await _sample(api)
    assert await _titles(api, parent_id=nodes["root"]["id"]) == {"Team", "Done"}
    assert await _titles(api, parent_id=nodes["team"]["id"]) == {"Agent"}
    assert await _titles(api, parent_id=nodes["agent"]["id"]) == set()


async def test_list_reflects_updates(api: Api) -> None:
    nodes = await _sample(api)
    await api.patch(nodes["agent"], owner_agent_id="boss", title="Agent renamed")
    assert await _titles(api, owner_agent_id="boss") == {"Root", "Agent renamed"}
    assert await _titles(api, owner_agent_id="lead") == {"Team"}


async def test_list_pages_partition_the_realm(api: Api) -> None:
    root = await api.create(title="n0")
    for n in range(1, 7):
        await api.child(root, title=f"n{n}")
    everything = [i["id"] for i in (await _list(api, limit=500))["items"]]
    assert len(everything) == 7

    seen: list[str] = []
    cursor: str | None = None
    sizes: list[int] = []
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = await _list(api, **params)
        sizes.append(len(page["items"]))
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == everything


async def test_list_pagination_composes_with_filters(api: Api) -> None:
    root = await api.create(title="root")
    for n in range(5):
        await api.child(root, title=f"lead {n}", owner_agent_id="lead")
        await api.child(root, title=f"other {n}", owner_agent_id="other")
    first = await _list(api, owner_agent_id="lead", limit=2)
    second = await _list(api, owner_agent_id="lead", limit=2, cursor=first["next_cursor"])
    third = await _list(api, owner_agent_id="lead", limit=2, cursor=second["next_cursor"])
    titles = [i["title"] for page in (first, second, third) for i in page["items"]]
    assert sorted(titles) == [f"lead {n}" for n in range(5)]
    assert third["next_cursor"] is None


async def test_exact_page_leaves_no_cursor(api: Api) -> None:
    await api.create()
    await api.create()
    page = await _list(api, limit=2)
    assert len(page["items"]) == 2
    assert page["next_cursor"] is None


@pytest.mark.parametrize("limit", [1, 500])
async def test_limit_bounds_are_accepted(api: Api, limit: int) -> None:
    await api.create()
    await api.create()
    page = await _list(api, limit=limit)
    assert len(page["items"]) == min(limit, 2)


@pytest.mark.parametrize("limit", ["0", "-1", "501", "10000", "ten"])
async def test_limit_out_of_range_is_400(api: Api, limit: str) -> None:
    response = await api.client.get(api.base, params={"limit": limit})
    assert_problem(response, 400, "invalid-request")


@pytest.mark.parametrize(
    "params",
    [
        {"level": "org"},
        {"status": "done"},
        {"priority": "urgent"},
        {"parent_id": "not-an-id"},
        {"cursor": "%%%"},
        {"roots": "maybe"},
    ],
)
async def test_bad_filters_are_400(api: Api, params: dict[str, str]) -> None:
    response = await api.client.get(api.base, params=params)
    assert_problem(response, 400, "invalid-request")


async def test_list_of_an_empty_realm_is_empty(api: Api) -> None:
    assert await _list(api) == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "path",
    ["/directives", "/directives/{id}/versions", "/directives/{id}/history", "/events", ""],
)
async def test_every_list_caps_its_limit_at_500(api: Api, path: str) -> None:
    node = await api.create()
    prefix = "/v1/realms" if path == "" else f"/v1/realms/{api.realm}"
    url = prefix + path.replace("{id}", node["id"])
    ok = await api.client.get(url, params={"limit": 500})
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["items"]) >= 1
    assert_problem(await api.client.get(url, params={"limit": 501}), 400, "invalid-request")
