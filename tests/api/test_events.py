"""The realm's event feed: gapless seq = realm revision, cursors, filters, one event per fact."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api
from tests.support.checks import assert_problem, if_match, realm_revision


async def _feed(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.client.get(f"/v1/realms/{api.realm}/events", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def _busy_realm(api: Api) -> list[dict[str, Any]]:
    """A few nodes and one of each kind of change; returns the nodes."""
    root = await api.create(owner_agent_id="boss")
    team = await api.child(root, owner_agent_id="lead")
    other = await api.create()
    team = await api.patch(team, body="v2")
    team = await api.patch(team, priority="high")
    team = await api.patch(team, parent_id=other["id"])
    team = await api.patch(team, status="paused")
    response = await api.client.post(
        f"{api.base}/{team['id']}/rollback", json={"version": 1}, headers=if_match(5)
    )
    assert response.status_code == 200, response.text
    response = await api.client.delete(f"{api.base}/{team['id']}", headers=if_match(6))
    assert response.status_code == 204, response.text
    return [root, team, other]


async def test_create_writes_exactly_one_created_event_with_version_1(api: Api) -> None:
    node = await api.create(owner_agent_id="bot", message="hello")
    events = await api.events()
    assert len(events) == 1
    event = events[0]
    assert event["type"] == "directive.created"
    assert event["directive_id"] == node["id"]
    assert (event["seq"], event["revision"], event["version"]) == (1, 1, 1)
    assert event["actor"] == "bootstrap"
    assert event["affected_agents"] == ["bot"]
    assert event["payload"] == {"level": "realm", "parent_id": None}
    assert event["occurred_at"]


async def test_seq_is_gapless_and_ends_at_the_realm_revision(api: Api) -> None:
    await _busy_realm(api)
    events = await api.events()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["seq"] == await realm_revision(api)
    assert [e["type"] for e in events] == [
        "directive.created",
        "directive.created",
        "directive.created",
        "directive.version_created",
        "directive.updated",
        "directive.moved",
        "directive.status_changed",
        "directive.rolled_back",
        "directive.deactivated",
    ]


async def test_refused_and_no_op_writes_leave_the_feed_alone(api: Api) -> None:
    node = await api.create(title="T", body="B")
    await api.patch(node, title="T", body="B")
    stale = await api.client.patch(
        f"{api.base}/{node['id']}", json={"title": "X"}, headers=if_match(9)
    )
    assert stale.status_code == 412
    bad = await api.client.post(api.base, json={"level": "team", "title": "T", "body": "B"})
    assert bad.status_code == 422
    assert [e["seq"] for e in await api.events()] == [1]
    assert await realm_revision(api) == 1


async def test_after_cursor_returns_only_later_events(api: Api) -> None:
    await _busy_realm(api)
    total = await realm_revision(api)
    page = await _feed(api, after=4)
    assert [e["seq"] for e in page["items"]] == list(range(5, total + 1))
    assert page["next_cursor"] == total
    assert (await _feed(api, after=total))["items"] == []


async def test_walking_the_feed_by_next_cursor_sees_every_event_once(api: Api) -> None:
    await _busy_realm(api)
    seen: list[int] = []
    after = 0
    while True:
        page = await _feed(api, after=after, limit=2)
        if not page["items"]:
            assert page["next_cursor"] is None
            break
        assert len(page["items"]) <= 2
        seen += [e["seq"] for e in page["items"]]
        after = page["next_cursor"]
    assert seen == list(range(1, await realm_revision(api) + 1))


async def test_type_filter(api: Api) -> None:
    await _busy_realm(api)
    created = await _feed(api, type="directive.created")
    assert [e["type"] for e in created["items"]] == ["directive.created"] * 3
    pair = await _feed(api, type=["directive.moved", "directive.deactivated"])
    assert [e["type"] for e in pair["items"]] == ["directive.moved", "directive.deactivated"]


async def test_directive_filter(api: Api) -> None:
    _, team, other = await _busy_realm(api)
    items = (await _feed(api, directive_id=other["id"]))["items"]
    assert [e["type"] for e in items] == ["directive.created"]
    items = (await _feed(api, directive_id=team["id"]))["items"]
    assert [e["revision"] for e in items] == [1, 2, 3, 4, 5, 6, 7]


async def test_affected_agents_cover_the_subtree(api: Api) -> None:
    root = await api.create(owner_agent_id="boss")
    await api.child(root, owner_agent_id="lead")
    await api.patch(root, body="new text")
    event = (await api.events())[-1]
    assert event["type"] == "directive.version_created"
    assert event["affected_agents"] == ["boss", "lead"]


@pytest.mark.parametrize(
    "params",
    [
        {"type": "directive.exploded"},
        {"after": -1},
        {"after": "x"},
        {"limit": 501},
        {"limit": 0},
        {"directive_id": "nope"},
    ],
)
async def test_bad_feed_queries_are_400(api: Api, params: dict[str, Any]) -> None:
    response = await api.client.get(f"/v1/realms/{api.realm}/events", params=params)
    assert_problem(response, 400, "invalid-request")


async def test_realm_revision_starts_at_zero(api: Api) -> None:
    assert await realm_revision(api) == 0
    assert await _feed(api) == {"items": [], "next_cursor": None}
