"""A directive's history: one entry per change, who and why, never the text."""

from __future__ import annotations

import json
from typing import Any

from tests.support.api import Api
from tests.support.checks import assert_problem, if_match

SECRET_TITLE = "Classified title zq81"
SECRET_BODY = "Classified body xk42"


async def _history(api: Api, directive_id: str, **params: Any) -> dict[str, Any]:
    response = await api.client.get(f"{api.base}/{directive_id}/history", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def _every_kind_of_change(api: Api) -> dict[str, Any]:
    """One node taken through create, content, attribute, move, status, rollback, deactivate."""
    root = await api.create(title="Root A", body="Root A")
    other = await api.create(title="Root B", body="Root B")
    node = await api.child(
        root, title=SECRET_TITLE, body=SECRET_BODY, owner_agent_id="bot", message="start"
    )
    node = await api.patch(node, body=SECRET_BODY + " v2", message="reword")
    node = await api.patch(node, priority="high", message="urgent now")
    node = await api.patch(node, parent_id=other["id"], message="reorg")
    node = await api.patch(node, status="paused", message="hold")
    response = await api.client.post(
        f"{api.base}/{node['id']}/rollback",
        json={"version": 1, "message": "undo"},
        headers=if_match(node["revision"]),
    )
    assert response.status_code == 200, response.text
    response = await api.client.request(
        "DELETE",
        f"{api.base}/{node['id']}",
        content=json.dumps({"expected_revision": 6, "message": "retire"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 204, response.text
    return node


async def test_history_has_one_entry_per_change_newest_first(api: Api) -> None:
    node = await _every_kind_of_change(api)
    items = (await _history(api, node["id"]))["items"]
    assert [(e["type"], e["revision"], e["message"]) for e in items] == [
        ("directive.deactivated", 7, "retire"),
        ("directive.rolled_back", 6, "undo"),
        ("directive.status_changed", 5, "hold"),
        ("directive.moved", 4, "reorg"),
        ("directive.updated", 3, "urgent now"),
        ("directive.version_created", 2, "reword"),
        ("directive.created", 1, "start"),
    ]
    assert all(e["actor"] == "bootstrap" for e in items)
    assert all(e["occurred_at"] for e in items)
    seqs = [e["seq"] for e in items]
    assert seqs == sorted(seqs, reverse=True)
    assert [e["version"] for e in items] == [None, 1, 2, 2, 2, 2, 1]


async def test_history_and_events_never_carry_directive_text(api: Api) -> None:
    node = await _every_kind_of_change(api)
    history = json.dumps(await _history(api, node["id"]))
    feed = json.dumps(await api.events())
    for text in ("Classified", SECRET_TITLE, SECRET_BODY):
        assert text not in history
        assert text not in feed


async def test_history_holds_only_its_own_directive(api: Api) -> None:
    a = await api.create()
    b = await api.create()
    await api.patch(b, priority="low")
    items = (await _history(api, a["id"]))["items"]
    assert [e["type"] for e in items] == ["directive.created"]


async def test_history_paginates_with_a_cursor(api: Api) -> None:
    node = await api.create(body="v1")
    for n in range(2, 6):
        node = await api.patch(node, body=f"v{n}")
    first = await _history(api, node["id"], limit=2)
    assert [e["revision"] for e in first["items"]] == [5, 4]
    second = await _history(api, node["id"], limit=2, cursor=first["next_cursor"])
    assert [e["revision"] for e in second["items"]] == [3, 2]
    third = await _history(api, node["id"], limit=2, cursor=second["next_cursor"])
    assert [e["revision"] for e in third["items"]] == [1]
    assert third["next_cursor"] is None


async def test_no_op_adds_no_history(api: Api) -> None:
    node = await api.create(title="T", body="B")
    await api.patch(node, title="T", body="B")
    items = (await _history(api, node["id"]))["items"]
    assert len(items) == 1


async def test_history_of_a_missing_directive_is_404(api: Api) -> None:
    response = await api.client.get(f"{api.base}/dir_{'0' * 26}/history")
    assert_problem(response, 404, "not-found")


async def test_history_with_a_bad_cursor_is_400(api: Api) -> None:
    node = await api.create()
    for cursor in ("not-a-cursor!!", "eA"):  # "eA" decodes to "x": not a number
        response = await api.client.get(
            f"{api.base}/{node['id']}/history", params={"cursor": cursor}
        )
        assert_problem(response, 400, "invalid-request")
