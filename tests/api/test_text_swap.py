"""A text-only PATCH takes the one-call swap on PostgreSQL (migration 0006); any other PATCH
takes the statement-by-statement path. Both must write the same node, version and event."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api
from tests.support.checks import assert_problem, if_match, versions_of

# Owners below the root, chosen so that code-point order differs from a locale's order.
OWNERS = ["b", "A", "a", "_x", "Zed", ".dot", "@at", "9"]
VOLATILE = {"id", "created_at", "updated_at", "parent_id", "occurred_at", "directive_id", "seq"}


async def _tree(api: Api) -> dict[str, Any]:
    root = await api.create(title="Root", body="one")
    team = await api.child(root, title="Team", body="t", owner_agent_id=OWNERS[0])
    for owner in OWNERS[1:]:
        await api.child(team, level="agent", title=owner, body="x", owner_agent_id=owner)
    return root


def _stable(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in VOLATILE}


async def _change(api: Api, node: dict[str, Any], **fields: Any) -> tuple[Any, ...]:
    after = await api.patch(node, **fields)
    events = [e for e in await api.events() if e["directive_id"] == node["id"]]
    versions = await versions_of(api, node["id"])
    return (
        _stable(after),
        [_stable(e) for e in events],
        [{k: v for k, v in ver.items() if k not in VOLATILE} for ver in versions],
    )


async def test_the_swap_writes_what_the_general_path_writes(api: Api) -> None:
    swapped_root = await _tree(api)
    general_root = await _tree(api)
    for body in ("two", "three"):
        swapped = await _change(api, swapped_root, body=body, message="why")
        # An unchanged priority makes the PATCH general without changing what it writes.
        general = await _change(api, general_root, body=body, message="why", priority="normal")
        assert swapped == general
        swapped_root = await api.get(swapped_root["id"])
        general_root = await api.get(general_root["id"])
    events = [e for e in await api.events() if e["directive_id"] == swapped_root["id"]]
    assert events[-1]["type"] == "directive.version_created"
    assert events[-1]["affected_agents"] == sorted(OWNERS)  # code-point order
    assert events[-1]["payload"] == {"version": 3, "based_on": 2}


async def test_a_title_alone_keeps_the_body_and_an_equal_text_writes_nothing(api: Api) -> None:
    root = await api.create(title="Root", body="one")
    renamed = await api.patch(root, title="Renamed")
    assert (renamed["title"], renamed["body"], renamed["active_version"]) == ("Renamed", "one", 2)
    same = await api.patch(renamed, body="one", title="Renamed")
    assert same["revision"] == renamed["revision"]
    assert len(await versions_of(api, root["id"])) == 2


async def test_text_on_a_deactivated_node_makes_it_live_again(api: Api) -> None:
    root = await api.create(title="Root", body="one", owner_agent_id="pilot")
    gone = await api.client.delete(f"{api.base}/{root['id']}", headers=if_match(1))
    assert gone.status_code == 204
    back = await api.patch(await api.get(root["id"]), body="one")  # same text, still a version
    assert (back["active_version"], back["latest_version"]) == (2, 2)
    prompt = await api.client.get(f"/v1/realms/{api.realm}/agents/pilot/prompt")
    assert prompt.json()["text"] == "# Root\n\none"


async def test_a_stale_text_change_is_refused_by_header_and_by_body(api: Api) -> None:
    root = await api.create(title="Root", body="one")
    await api.patch(root, body="two")
    url = f"{api.base}/{root['id']}"
    by_header = await api.client.patch(url, json={"body": "x"}, headers=if_match(1))
    assert assert_problem(by_header, 412, "stale-revision")["current_revision"] == 2
    by_body = await api.client.patch(url, json={"body": "x", "expected_revision": 1})
    assert assert_problem(by_body, 409, "stale-revision")["current_revision"] == 2
    missing = await api.client.patch(
        f"{api.base}/dir_00000000000000000000000000", json={"body": "x"}, headers=if_match(1)
    )
    assert_problem(missing, 404, "not-found")
    assert len(await versions_of(api, root["id"])) == 2
