"""Reading the tree: a node's ancestry, its nested subtree, and the realm's whole forest."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api
from tests.support.checks import assert_problem, realm_revision


async def _get(api: Api, path: str) -> dict[str, Any]:
    response = await api.client.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _shape(node: dict[str, Any]) -> tuple[str, list[Any]]:
    """A tree as (title, [children…]) so nesting and order compare in one assertion."""
    return node["title"], [_shape(child) for child in node["children"]]


async def _sample(api: Api) -> dict[str, dict[str, Any]]:
    """Root ─ Team (─ Agent ─ Sub-agent) ─ Urgent team (critical); and a second root."""
    root = await api.create(title="Root")
    team = await api.child(root, title="Team")
    agent = await api.child(team, level="agent", title="Agent", owner_agent_id="worker")
    sub = await api.child(agent, level="agent", title="Sub-agent")
    urgent = await api.child(root, title="Urgent team", priority="critical")
    second = await api.create(title="Second root")
    return {
        "root": root,
        "team": team,
        "agent": agent,
        "sub": sub,
        "urgent": urgent,
        "second": second,
    }


async def test_ancestry_runs_from_self_to_root(api: Api) -> None:
    nodes = await _sample(api)
    result = await _get(api, f"{api.base}/{nodes['sub']['id']}/ancestry")
    assert result["depth"] == 4
    chain = result["ancestry"]
    assert [e["id"] for e in chain] == [
        nodes["sub"]["id"],
        nodes["agent"]["id"],
        nodes["team"]["id"],
        nodes["root"]["id"],
    ]
    assert [e["level"] for e in chain] == ["agent", "agent", "team", "realm"]
    assert [e["title"] for e in chain] == ["Sub-agent", "Agent", "Team", "Root"]
    assert chain[1]["owner_agent_id"] == "worker"
    assert all("body" not in e for e in chain)


async def test_ancestry_of_a_root_is_itself(api: Api) -> None:
    root = await api.create(title="Alone")
    result = await _get(api, f"{api.base}/{root['id']}/ancestry")
    assert result["depth"] == 1
    assert [(e["id"], e["title"]) for e in result["ancestry"]] == [(root["id"], "Alone")]


async def test_ancestry_shows_the_active_title(api: Api) -> None:
    root = await api.create(title="Before")
    await api.patch(root, title="After")
    result = await _get(api, f"{api.base}/{root['id']}/ancestry")
    assert result["ancestry"][0]["title"] == "After"


async def test_ancestry_of_a_missing_directive_is_404(api: Api) -> None:
    response = await api.client.get(f"{api.base}/dir_{'0' * 26}/ancestry")
    assert_problem(response, 404, "not-found")


async def test_subtree_is_nested_with_critical_children_first(api: Api) -> None:
    nodes = await _sample(api)
    tree = await _get(api, f"{api.base}/{nodes['root']['id']}/tree")
    assert _shape(tree) == (
        "Root",
        [("Urgent team", []), ("Team", [("Agent", [("Sub-agent", [])])])],
    )
    assert tree["id"] == nodes["root"]["id"]
    assert tree["children"][0]["priority"] == "critical"
    assert tree["children"][1]["children"][0]["owner_agent_id"] == "worker"


async def test_subtree_of_an_inner_node_holds_only_what_is_below_it(api: Api) -> None:
    nodes = await _sample(api)
    tree = await _get(api, f"{api.base}/{nodes['agent']['id']}/tree")
    assert _shape(tree) == ("Agent", [("Sub-agent", [])])


async def test_subtree_of_a_leaf_has_no_children(api: Api) -> None:
    nodes = await _sample(api)
    tree = await _get(api, f"{api.base}/{nodes['sub']['id']}/tree")
    assert _shape(tree) == ("Sub-agent", [])


async def test_subtree_follows_a_move(api: Api) -> None:
    nodes = await _sample(api)
    await api.patch(nodes["team"], parent_id=nodes["second"]["id"])
    root_tree = await _get(api, f"{api.base}/{nodes['root']['id']}/tree")
    assert _shape(root_tree) == ("Root", [("Urgent team", [])])
    second_tree = await _get(api, f"{api.base}/{nodes['second']['id']}/tree")
    assert _shape(second_tree) == (
        "Second root",
        [("Team", [("Agent", [("Sub-agent", [])])])],
    )


async def test_subtree_of_a_missing_directive_is_404(api: Api) -> None:
    response = await api.client.get(f"{api.base}/dir_{'0' * 26}/tree")
    assert_problem(response, 404, "not-found")


async def test_realm_tree_is_the_whole_forest(api: Api) -> None:
    nodes = await _sample(api)
    forest = await _get(api, f"/v1/realms/{api.realm}/tree")
    assert forest["realm_id"] == api.realm
    assert forest["revision"] == await realm_revision(api)
    assert [_shape(root) for root in forest["roots"]] == [
        ("Root", [("Urgent team", []), ("Team", [("Agent", [("Sub-agent", [])])])]),
        ("Second root", []),
    ]
    assert forest["roots"][1]["id"] == nodes["second"]["id"]


async def test_realm_tree_orders_roots_by_priority(api: Api) -> None:
    await api.create(title="Low", priority="low")
    await api.create(title="Critical", priority="critical")
    await api.create(title="Normal")
    forest = await _get(api, f"/v1/realms/{api.realm}/tree")
    assert [root["title"] for root in forest["roots"]] == ["Critical", "Normal", "Low"]


async def test_realm_tree_of_an_empty_realm_has_no_roots(api: Api) -> None:
    forest = await _get(api, f"/v1/realms/{api.realm}/tree")
    assert forest["roots"] == []
    assert forest["revision"] == 0


async def test_realm_tree_of_an_unknown_realm_is_404(api: Api) -> None:
    response = await api.client.get("/v1/realms/no-such-realm-here/tree")
    assert_problem(response, 404, "not-found")
