"""Versions: what makes one, what does not, listing, diffs, rollback and deactivation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.support.api import Api
from tests.support.checks import (
    assert_problem,
    assert_unchanged,
    if_match,
    realm_revision,
    snapshot,
    versions_of,
)


def _instant(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


async def _rollback(
    api: Api, node: dict[str, Any], version: int, expect: int = 200, **extra: Any
) -> dict[str, Any]:
    response = await api.client.post(
        f"{api.base}/{node['id']}/rollback",
        json={"version": version, **extra},
        headers=if_match(node["revision"]),
    )
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


async def _deactivate(api: Api, node: dict[str, Any]) -> None:
    response = await api.client.delete(
        f"{api.base}/{node['id']}", headers=if_match(node["revision"])
    )
    assert response.status_code == 204, response.text
    assert response.content == b""


async def _with_versions(api: Api, count: int) -> dict[str, Any]:
    """A node with versions 1..count whose bodies are "Body 1".."Body <count>"."""
    node = await api.create(title="Title", body="Body 1")
    for n in range(2, count + 1):
        node = await api.patch(node, body=f"Body {n}", message=f"make {n}")
    return node


# --- no-ops --------------------------------------------------------------------------------


async def test_patch_with_the_same_title_and_body_is_a_no_op(api: Api) -> None:
    node = await api.create(title="Same", body="Same body")
    before = await snapshot(api, node["id"])
    result = await api.patch(node, title="Same", body="Same body", message="nothing new")
    assert result["changed"] is False
    assert result["revision"] == 1
    assert result["latest_version"] == 1
    assert result["active_version"] == 1
    assert result["updated_at"] == node["updated_at"]
    await assert_unchanged(api, before)


@pytest.mark.parametrize(
    "fields",
    [
        {"title": "Same"},
        {"body": "Same body"},
        {"priority": "normal"},
        {"injection_mode": "system_first"},
        {"owner_agent_id": "owner-1"},
        {"metadata": {"a": 1}},
        {"key": "same-key"},
        {"status": "active"},
        {},
    ],
)
async def test_patch_repeating_current_values_is_a_no_op(api: Api, fields: dict[str, Any]) -> None:
    node = await api.create(
        title="Same", body="Same body", owner_agent_id="owner-1", metadata={"a": 1}, key="same-key"
    )
    before = await snapshot(api, node["id"])
    result = await api.patch(node, **fields)
    assert result["changed"] is False
    assert result["revision"] == node["revision"]
    await assert_unchanged(api, before)


# --- content and attribute changes ---------------------------------------------------------


async def test_content_change_makes_a_new_version(api: Api) -> None:
    node = await api.create(title="Old title", body="Old body")
    events_before = await api.events()
    result = await api.patch(node, body="New body", message="clearer")
    assert result["changed"] is True
    assert result["revision"] == 2
    assert result["latest_version"] == 2
    assert result["active_version"] == 2
    assert result["title"] == "Old title"
    assert result["body"] == "New body"
    assert result["created_at"] == node["created_at"]
    assert _instant(result["updated_at"]) > _instant(node["updated_at"])
    assert (await api.get(node["id"]))["body"] == "New body"

    listed = await versions_of(api, node["id"])
    assert [v["version"] for v in listed] == [2, 1]
    assert listed[0]["based_on"] == 1
    assert listed[0]["message"] == "clearer"
    assert listed[1]["based_on"] is None

    new_events = (await api.events())[len(events_before) :]
    assert [(e["type"], e["revision"], e["version"]) for e in new_events] == [
        ("directive.version_created", 2, 2)
    ]
    assert new_events[0]["payload"] == {"version": 2, "based_on": 1}


async def test_title_only_change_keeps_the_body(api: Api) -> None:
    node = await api.create(title="Old title", body="Kept body")
    result = await api.patch(node, title="New title")
    assert (result["title"], result["body"]) == ("New title", "Kept body")
    assert result["latest_version"] == 2


@pytest.mark.parametrize(
    ("fields", "attribute"),
    [
        ({"priority": "critical"}, "priority"),
        ({"owner_agent_id": "agent-7"}, "owner_agent_id"),
        ({"owner_agent_id": None}, "owner_agent_id"),
        ({"metadata": {"team": "blue", "n": [1, 2]}}, "metadata"),
        ({"injection_mode": "user_prepend"}, "injection_mode"),
        ({"key": "renamed-key"}, "key"),
        ({"key": None}, "key"),
    ],
)
async def test_attribute_change_raises_revision_without_a_version(
    api: Api, fields: dict[str, Any], attribute: str
) -> None:
    node = await api.create(title="T", body="B", owner_agent_id="agent-1", key="orig-key")
    events_before = await api.events()
    result = await api.patch(node, **fields)
    assert result["changed"] is True
    assert result["revision"] == 2
    assert result["latest_version"] == 1
    assert result["active_version"] == 1
    for name, value in fields.items():
        assert result[name] == value
    assert await api.get(node["id"]) == {k: v for k, v in result.items() if k != "changed"}
    assert len(await versions_of(api, node["id"])) == 1

    new_events = (await api.events())[len(events_before) :]
    assert len(new_events) == 1
    assert new_events[0]["type"] == "directive.updated"
    assert new_events[0]["revision"] == 2
    assert new_events[0]["version"] == 1
    assert new_events[0]["payload"]["changed"] == [attribute]


async def test_revision_rises_by_one_on_every_kind_of_change(api: Api) -> None:
    root = await api.create(title="Root", body="Root")
    other = await api.create(title="Other", body="Other")
    node = await api.child(root, title="Node", body="v1")
    revisions = [node["revision"]]
    node = await api.patch(node, body="v2")
    revisions.append(node["revision"])
    node = await api.patch(node, priority="low")
    revisions.append(node["revision"])
    node = await api.patch(node, parent_id=other["id"])
    revisions.append(node["revision"])
    node = await api.patch(node, status="paused")
    revisions.append(node["revision"])
    node = await _rollback(api, node, 1)
    revisions.append(node["revision"])
    await _deactivate(api, node)
    revisions.append((await api.get(node["id"]))["revision"])
    assert revisions == [1, 2, 3, 4, 5, 6, 7]


async def test_one_patch_changing_content_and_attributes_raises_revision_once(api: Api) -> None:
    node = await api.create(title="T", body="B")
    realm_before = await realm_revision(api)
    result = await api.patch(node, body="B2", priority="high", status="paused")
    assert result["revision"] == 2
    assert result["latest_version"] == 2
    new_events = (await api.events())[-3:]
    assert [e["type"] for e in new_events] == [
        "directive.version_created",
        "directive.updated",
        "directive.status_changed",
    ]
    assert {e["revision"] for e in new_events} == {2}
    assert await realm_revision(api) == realm_before + 3


# --- listing and reading versions ------------------------------------------------------------


async def test_versions_are_listed_newest_first_without_bodies(api: Api) -> None:
    node = await _with_versions(api, 3)
    items = await versions_of(api, node["id"])
    assert [v["version"] for v in items] == [3, 2, 1]
    assert [v["based_on"] for v in items] == [2, 1, None]
    assert all("body" not in v for v in items)
    assert all(v["title"] == "Title" for v in items)
    assert all(v["content_hash"].startswith("sha256:") for v in items)
    assert len({v["content_hash"] for v in items}) == 3
    assert [v["message"] for v in items] == ["make 3", "make 2", None]


async def test_version_list_paginates_with_a_cursor(api: Api) -> None:
    node = await _with_versions(api, 5)
    url = f"{api.base}/{node['id']}/versions"
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await api.client.get(url, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [v["version"] for v in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [5, 4, 3, 2, 1]
    assert pages == 3


async def test_version_list_has_no_cursor_when_it_fits(api: Api) -> None:
    node = await _with_versions(api, 2)
    response = await api.client.get(f"{api.base}/{node['id']}/versions", params={"limit": 2})
    assert response.json()["next_cursor"] is None


async def test_version_list_of_a_missing_directive_is_404(api: Api) -> None:
    response = await api.client.get(f"{api.base}/dir_{'0' * 26}/versions")
    assert_problem(response, 404, "not-found")


async def test_single_version_is_returned_in_full(api: Api) -> None:
    node = await api.create(title="T1", body="B1", message="first")
    await api.patch(node, title="T2", body="B2", message="second")
    response = await api.client.get(f"{api.base}/{node['id']}/versions/1")
    assert response.status_code == 200, response.text
    v1 = response.json()
    assert v1["directive_id"] == node["id"]
    assert (v1["version"], v1["title"], v1["body"]) == (1, "T1", "B1")
    assert v1["message"] == "first"
    assert v1["based_on"] is None
    assert v1["author"] == "bootstrap"
    assert v1["content_hash"].startswith("sha256:")
    assert len(v1["content_hash"]) == len("sha256:") + 64
    v2 = (await api.client.get(f"{api.base}/{node['id']}/versions/2")).json()
    assert (v2["title"], v2["body"], v2["based_on"]) == ("T2", "B2", 1)


async def test_same_content_gives_the_same_hash(api: Api) -> None:
    a = await api.create(title="Same", body="Same")
    b = await api.create(title="Same", body="Same")
    va = (await api.client.get(f"{api.base}/{a['id']}/versions/1")).json()
    vb = (await api.client.get(f"{api.base}/{b['id']}/versions/1")).json()
    assert va["content_hash"] == vb["content_hash"]


@pytest.mark.parametrize("number", [0, 2, 999])
async def test_missing_version_is_404(api: Api, number: int) -> None:
    node = await api.create()
    response = await api.client.get(f"{api.base}/{node['id']}/versions/{number}")
    assert_problem(response, 404, "not-found")


# --- diff ------------------------------------------------------------------------------------


async def test_diff_is_a_unified_diff_of_title_and_body(api: Api) -> None:
    node = await api.create(title="Old title", body="line one\nline two\n")
    await api.patch(node, title="New title", body="line one\nline 2\n")
    response = await api.client.get(f"{api.base}/{node['id']}/diff", params={"from": 1, "to": 2})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["from"], result["to"]) == (1, 2)
    lines = result["diff"].splitlines()
    assert lines[0].startswith("--- v1")
    assert lines[1].startswith("+++ v2")
    assert any(line.startswith("@@") for line in lines)
    assert "-title: Old title" in lines
    assert "+title: New title" in lines
    assert "-line two" in lines
    assert "+line 2" in lines
    assert " line one" in lines


async def test_diff_of_a_version_with_itself_is_empty(api: Api) -> None:
    node = await api.create()
    response = await api.client.get(f"{api.base}/{node['id']}/diff", params={"from": 1, "to": 1})
    assert response.status_code == 200, response.text
    assert response.json()["diff"] == ""


async def test_diff_runs_backwards_too(api: Api) -> None:
    node = await api.create(title="T", body="old")
    await api.patch(node, body="new")
    response = await api.client.get(f"{api.base}/{node['id']}/diff", params={"from": 2, "to": 1})
    lines = response.json()["diff"].splitlines()
    assert "-new" in lines
    assert "+old" in lines


async def test_diff_with_a_missing_version_is_404(api: Api) -> None:
    node = await api.create()
    response = await api.client.get(f"{api.base}/{node['id']}/diff", params={"from": 1, "to": 9})
    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize("params", [{"from": 1}, {"to": 1}, {"from": 0, "to": 1}, {"from": "x"}])
async def test_diff_needs_two_valid_version_numbers(api: Api, params: dict[str, Any]) -> None:
    node = await api.create()
    response = await api.client.get(f"{api.base}/{node['id']}/diff", params=params)
    assert_problem(response, 400, "invalid-request")


# --- rollback ------------------------------------------------------------------------------


async def test_rollback_moves_the_active_version_without_a_new_one(api: Api) -> None:
    node = await _with_versions(api, 3)
    realm_before = await realm_revision(api)
    result = await _rollback(api, node, 1, message="v3 was wrong")
    assert result["changed"] is True
    assert result["active_version"] == 1
    assert result["latest_version"] == 3
    assert result["revision"] == node["revision"] + 1
    assert result["body"] == "Body 1"
    found = await api.get(node["id"])
    assert (found["active_version"], found["body"]) == (1, "Body 1")
    assert [v["version"] for v in await versions_of(api, node["id"])] == [3, 2, 1]

    assert await realm_revision(api) == realm_before + 1
    event = (await api.events())[-1]
    assert event["type"] == "directive.rolled_back"
    assert event["version"] == 1
    assert event["revision"] == result["revision"]
    assert event["payload"] == {"from_version": 3, "to_version": 1}


async def test_rollback_to_the_active_version_changes_nothing(api: Api) -> None:
    node = await _with_versions(api, 2)
    before = await snapshot(api, node["id"])
    result = await _rollback(api, node, 2)
    assert result["changed"] is False
    assert result["revision"] == node["revision"]
    await assert_unchanged(api, before)


async def test_rollback_to_a_missing_version_is_404_and_writes_nothing(api: Api) -> None:
    node = await _with_versions(api, 2)
    before = await snapshot(api, node["id"])
    response = await api.client.post(
        f"{api.base}/{node['id']}/rollback", json={"version": 3}, headers=if_match(2)
    )
    assert_problem(response, 404, "not-found")
    await assert_unchanged(api, before)


@pytest.mark.parametrize("body", [{}, {"version": 0}, {"version": "one"}, {"version": 1, "x": 1}])
async def test_rollback_with_a_bad_body_is_400(api: Api, body: dict[str, Any]) -> None:
    node = await _with_versions(api, 2)
    before = await snapshot(api, node["id"])
    response = await api.client.post(
        f"{api.base}/{node['id']}/rollback", json=body, headers=if_match(2)
    )
    assert_problem(response, 400, "invalid-request")
    await assert_unchanged(api, before)


async def test_update_after_rollback_is_based_on_the_rolled_back_version(api: Api) -> None:
    node = await _with_versions(api, 3)
    node = await _rollback(api, node, 1)
    result = await api.patch(node, body="Body 4")
    assert (result["active_version"], result["latest_version"]) == (4, 4)
    v4 = (await api.client.get(f"{api.base}/{node['id']}/versions/4")).json()
    assert v4["based_on"] == 1


async def test_update_after_rollback_compares_with_the_active_version(api: Api) -> None:
    node = await _with_versions(api, 2)
    node = await _rollback(api, node, 1)
    same_as_active = await api.patch(node, body="Body 1")
    assert same_as_active["changed"] is False
    # Equal to the latest version but not to the active one: a change, and a new version.
    result = await api.patch(node, body="Body 2")
    assert result["changed"] is True
    assert (result["active_version"], result["latest_version"]) == (3, 3)


# --- deactivate ------------------------------------------------------------------------------


async def test_deactivate_clears_the_active_version_and_keeps_the_node(api: Api) -> None:
    node = await _with_versions(api, 2)
    realm_before = await realm_revision(api)
    await _deactivate(api, node)
    found = await api.get(node["id"])
    assert found["active_version"] is None
    assert found["latest_version"] == 2
    assert found["revision"] == node["revision"] + 1
    assert (found["title"], found["body"]) == ("Title", "Body 2")
    assert [v["version"] for v in await versions_of(api, node["id"])] == [2, 1]
    assert await realm_revision(api) == realm_before + 1
    event = (await api.events())[-1]
    assert event["type"] == "directive.deactivated"
    assert event["version"] is None
    assert event["revision"] == found["revision"]
    assert event["payload"] == {"previous_version": 2}


async def test_deactivate_sets_the_new_etag(api: Api) -> None:
    node = await api.create()
    response = await api.client.delete(f"{api.base}/{node['id']}", headers=if_match(1))
    assert response.status_code == 204
    assert response.headers["ETag"] == '"2"'


async def test_deactivating_twice_is_a_no_op(api: Api) -> None:
    node = await api.create()
    await _deactivate(api, node)
    node = await api.get(node["id"])
    before = await snapshot(api, node["id"])
    await _deactivate(api, node)
    await assert_unchanged(api, before)


async def test_new_text_after_deactivate_reactivates_with_a_new_version(api: Api) -> None:
    node = await _with_versions(api, 2)
    await _deactivate(api, node)
    node = await api.get(node["id"])
    result = await api.patch(node, body="Back again")
    assert result["changed"] is True
    assert (result["active_version"], result["latest_version"]) == (3, 3)
    assert result["body"] == "Back again"
    assert result["revision"] == node["revision"] + 1
    v3 = (await api.client.get(f"{api.base}/{node['id']}/versions/3")).json()
    assert v3["based_on"] is None


async def test_same_text_after_deactivate_also_reactivates(api: Api) -> None:
    node = await api.create(title="T", body="B")
    await _deactivate(api, node)
    node = await api.get(node["id"])
    result = await api.patch(node, title="T", body="B")
    assert result["changed"] is True
    assert (result["active_version"], result["latest_version"]) == (2, 2)


async def test_attribute_change_after_deactivate_keeps_it_deactivated(api: Api) -> None:
    node = await api.create()
    await _deactivate(api, node)
    node = await api.get(node["id"])
    result = await api.patch(node, priority="high")
    assert result["changed"] is True
    assert result["active_version"] is None


async def test_rollback_after_deactivate_reactivates_an_old_version(api: Api) -> None:
    node = await _with_versions(api, 2)
    await _deactivate(api, node)
    node = await api.get(node["id"])
    result = await _rollback(api, node, 1)
    assert result["changed"] is True
    assert (result["active_version"], result["latest_version"]) == (1, 2)
    assert result["body"] == "Body 1"
