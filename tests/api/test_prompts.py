"""Composed prompts through the API: rules, reproducibility, and exact invalidation."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from charter.cache.entries import decode
from charter.cache.redis_tier import entry_key
from charter.runtime import Runtime
from tests.support.api import Api


def _runtime(app: Litestar) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def prompt(api: Api, agent: str, **headers: str) -> Any:
    return await api.client.get(f"/v1/realms/{api.realm}/agents/{agent}/prompt", headers=headers)


async def text_of(api: Api, agent: str) -> str:
    response = await prompt(api, agent)
    assert response.status_code == 200, response.text
    text: str = response.json()["text"]
    return text


async def test_paused_and_deactivated_rules(api: Api) -> None:
    root = await api.create(title="Root", body="root body")
    team = await api.child(root, title="Team", body="team body", owner_agent_id="t")
    leaf = await api.child(team, level="agent", title="Leaf", body="leaf body", owner_agent_id="x")
    assert (
        await text_of(api, "x")
        == "# Root\n\nroot body\n\n## Team\n\nteam body\n\n### Leaf\n\nleaf body"
    )

    # Deactivating the leaf: it still qualifies, contributes nothing; its ancestors still do.
    response = await api.client.delete(
        f"{api.base}/{leaf['id']}", headers={"If-Match": f'"{leaf["revision"]}"'}
    )
    assert response.status_code == 204
    doc = (await prompt(api, "x")).json()
    assert doc["text"] == "# Root\n\nroot body\n\n## Team\n\nteam body"
    assert [layer["version"] for layer in doc["layers"]] == [1, 1, None]

    # Pausing an ancestor: the agent's only owned node no longer qualifies — 200, empty.
    team = await api.get(team["id"])
    await api.patch(team, status="paused")
    doc = (await prompt(api, "x")).json()
    assert doc["text"] == ""
    assert doc["layers"] == []
    assert (await prompt(api, "t")).json()["text"] == ""


async def test_an_agent_that_owns_nothing_is_404(api: Api) -> None:
    await api.create(title="Root", body="body", owner_agent_id="someone")
    response = await prompt(api, "nobody")
    assert response.status_code == 404
    assert response.json()["code"] == "not-found"


async def test_layers_order_by_depth_then_priority_then_age(api: Api) -> None:
    root = await api.create(title="Root", body="r", owner_agent_id="x")
    await api.child(root, level="agent", title="Low", body="l", priority="low", owner_agent_id="x")
    await api.child(
        root, level="agent", title="Crit", body="c", priority="critical", owner_agent_id="x"
    )
    await api.child(root, level="agent", title="Norm", body="n", owner_agent_id="x")
    doc = (await prompt(api, "x")).json()
    assert [layer["title"] for layer in doc["layers"]] == ["Root", "Crit", "Norm", "Low"]
    assert [layer["depth"] for layer in doc["layers"]] == [1, 2, 2, 2]


async def test_injection_mode_is_the_deepest_owned_contributing_nodes(api: Api) -> None:
    root = await api.create(
        title="Root", body="r", owner_agent_id="x", injection_mode="user_prepend"
    )
    await api.child(
        root,
        level="agent",
        title="Leaf",
        body="l",
        owner_agent_id="x",
        injection_mode="system_append",
    )
    doc = (await prompt(api, "x")).json()
    assert doc["injection_mode"] == "system_append"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    response = await api.client.post(
        f"/v1/realms/{api.realm}/agents/x/inject", json={"messages": messages}
    )
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["composition_id"] == doc["composition_id"]
    assert out["messages"][0]["content"] == "Be brief.\n\n" + doc["text"]
    assert out["messages"][1] == messages[1]


async def test_a_composition_id_resolves_to_the_same_prompt_after_changes(api: Api) -> None:
    root = await api.create(title="Root", body="first", owner_agent_id="x")
    first = (await prompt(api, "x")).json()
    root = await api.patch(root, body="second")
    second = (await prompt(api, "x")).json()
    assert second["composition_id"] != first["composition_id"]
    rolled = await api.client.post(
        f"{api.base}/{root['id']}/rollback",
        json={"version": 1, "expected_revision": root["revision"]},
    )
    assert rolled.status_code == 200, rolled.text
    third = (await prompt(api, "x")).json()
    # Same active versions, same text: the same id as before the change.
    assert third["composition_id"] == first["composition_id"]
    assert third["text"] == first["text"]
    for doc in (first, second):
        resolved = await api.client.get(
            f"/v1/realms/{api.realm}/compositions/{doc['composition_id']}"
        )
        assert resolved.status_code == 200
        body = resolved.json()
        assert body["text"] == doc["text"]
        assert [lay["version"] for lay in body["layers"]] == [
            lay["version"] for lay in doc["layers"]
        ]


async def test_a_composition_of_another_realm_is_404(
    api: Api, client: AsyncTestClient[Litestar]
) -> None:
    await api.create(title="Root", body="b", owner_agent_id="x")
    doc = (await prompt(api, "x")).json()
    other = Api(client, api.realm + "x")
    created = await client.post("/v1/realms", json={"id": other.realm})
    assert created.status_code == 201
    response = await client.get(f"/v1/realms/{other.realm}/compositions/{doc['composition_id']}")
    assert response.status_code == 404


async def test_if_none_match_gives_304_until_a_change(api: Api) -> None:
    root = await api.create(title="Root", body="b", owner_agent_id="x")
    response = await prompt(api, "x")
    etag = response.headers["etag"]
    assert (await prompt(api, "x", **{"If-None-Match": etag})).status_code == 304
    await api.patch(root, body="changed")
    after = await prompt(api, "x", **{"If-None-Match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag


async def test_long_poll_times_out_with_304(api: Api) -> None:
    await api.create(title="Root", body="b", owner_agent_id="x")
    etag = (await prompt(api, "x")).headers["etag"]
    response = await api.client.get(
        f"/v1/realms/{api.realm}/agents/x/prompt",
        params={"wait": 1},
        headers={"If-None-Match": etag},
    )
    assert response.status_code == 304


async def test_agents_lists_owners_with_counts(api: Api) -> None:
    root = await api.create(title="Root", body="b", owner_agent_id="lead")
    await api.child(root, level="agent", title="A", body="a", owner_agent_id="x")
    await api.child(root, level="agent", title="B", body="b", owner_agent_id="x", status="paused")
    response = await api.client.get(f"/v1/realms/{api.realm}/agents")
    assert response.status_code == 200
    assert response.json()["items"] == [
        {"agent_id": "lead", "directives": 1, "active": 1, "claims": []},
        {"agent_id": "x", "directives": 2, "active": 1, "claims": []},
    ]


# --- exact invalidation --------------------------------------------------------------------


class Fleet:
    """root R ─ T1 (lead) ─ A1 (a1), A2 (a2); R ─ T2 (b1) ─ B2 (b2); Z (z) apart."""

    AGENTS = ("lead", "a1", "a2", "b1", "b2", "z")

    def __init__(self, api: Api, app: Litestar) -> None:
        self.api = api
        self.app = app
        self.nodes: dict[str, dict[str, Any]] = {}

    async def build(self) -> None:
        api = self.api
        self.nodes["R"] = await api.create(title="R", body="r")
        self.nodes["T1"] = await api.child(
            self.nodes["R"], title="T1", body="t1", owner_agent_id="lead"
        )
        self.nodes["A1"] = await api.child(
            self.nodes["T1"], level="agent", title="A1", body="a1", owner_agent_id="a1"
        )
        self.nodes["A2"] = await api.child(
            self.nodes["T1"], level="agent", title="A2", body="a2", owner_agent_id="a2"
        )
        self.nodes["T2"] = await api.child(
            self.nodes["R"], title="T2", body="t2", owner_agent_id="b1"
        )
        self.nodes["B2"] = await api.child(
            self.nodes["T2"], level="agent", title="B2", body="b2", owner_agent_id="b2"
        )
        self.nodes["Z"] = await api.create(title="Z", body="z", owner_agent_id="z")

    async def fresh(self, name: str) -> dict[str, Any]:
        self.nodes[name] = await self.api.get(self.nodes[name]["id"])
        return self.nodes[name]


async def cached_agents(fleet: Fleet) -> set[str]:
    """Agents with a live entry: in Redis when the app uses it, else in the local tier."""
    return set(await cached_stamps(fleet))


async def cached_stamps(fleet: Fleet) -> dict[str, int]:
    """Each agent's live entry's stamp: in Redis when the app uses it, else in the local tier."""
    runtime = _runtime(fleet.app)
    if runtime.settings.redis_url is None:
        local = runtime.prompts.local
        found = {a: local.get((fleet.api.realm, a)) for a in fleet.AGENTS}
        return {a: entry.stamp for a, entry in found.items() if entry is not None}
    # The app's own client belongs to the app's event loop: read with one of our own.
    redis = Redis.from_url(runtime.settings.redis_url)
    try:
        raw = [await redis.get(entry_key(fleet.api.realm, agent)) for agent in fleet.AGENTS]
    finally:
        await redis.aclose()
    # Without decode_responses the client answers bytes (or None for a missing key).
    entries = [decode(value if isinstance(value, bytes) else None) for value in raw]
    return {
        agent: entry.stamp
        for agent, entry in zip(fleet.AGENTS, entries, strict=True)
        if entry is not None
    }


async def last_event_agents(api: Api, after: int) -> set[str]:
    return {agent for event in await api.events(after) for agent in event["affected_agents"]}


async def realm_revision(api: Api) -> int:
    response = await api.client.get(f"/v1/realms/{api.realm}")
    revision: int = response.json()["revision"]
    return revision


CASES: list[tuple[str, set[str]]] = [
    ("update T1 body", {"lead", "a1", "a2"}),
    ("update A1 body", {"a1"}),
    ("create under T2", {"n"}),
    ("move A2 under T2", {"a2"}),
    ("pause T2", {"b1", "b2"}),
    ("owner of A1 to b2", {"a1", "b2"}),
    ("rollback T1", {"lead", "a1", "a2"}),
    ("deactivate R", {"lead", "a1", "a2", "b1", "b2"}),
    ("metadata on A1", {"a1"}),
]


@pytest.mark.parametrize(("change", "expected"), CASES, ids=[c for c, _ in CASES])
async def test_a_change_invalidates_exactly_the_affected_agents(
    api: Api, app: Litestar, change: str, expected: set[str]
) -> None:
    fleet = Fleet(api, app)
    await fleet.build()
    if change == "rollback T1":
        await api.patch(fleet.nodes["T1"], body="t1 v2")
        await fleet.fresh("T1")
    await warm(fleet)
    stamps = await cached_stamps(fleet)
    before = await realm_revision(api)
    nodes = fleet.nodes
    if change == "update T1 body":
        await api.patch(nodes["T1"], body="t1 changed")
    elif change == "update A1 body":
        await api.patch(nodes["A1"], title="A1 renamed")
    elif change == "create under T2":
        await api.child(nodes["T2"], level="agent", title="N", body="n", owner_agent_id="n")
    elif change == "move A2 under T2":
        await api.patch(nodes["A2"], parent_id=nodes["T2"]["id"])
    elif change == "pause T2":
        await api.patch(nodes["T2"], status="paused")
    elif change == "owner of A1 to b2":
        await api.patch(nodes["A1"], owner_agent_id="b2")
    elif change == "rollback T1":
        response = await api.client.post(
            f"{api.base}/{nodes['T1']['id']}/rollback",
            json={"version": 1, "expected_revision": nodes["T1"]["revision"]},
        )
        assert response.status_code == 200, response.text
    elif change == "deactivate R":
        response = await api.client.delete(
            f"{api.base}/{nodes['R']['id']}", headers={"If-Match": f'"{nodes["R"]["revision"]}"'}
        )
        assert response.status_code == 204
    elif change == "metadata on A1":
        await api.patch(nodes["A1"], metadata={"ticket": "X-1"})
    assert await last_event_agents(api, before) == expected
    # An affected agent's entry is gone, or already replaced by its new composition (a text
    # change recomposes it: services/refresh.py); every other agent's is the one from before.
    after = await cached_stamps(fleet)
    unchanged = {agent for agent, stamp in after.items() if stamps.get(agent) == stamp}
    assert set(Fleet.AGENTS) - unchanged == expected - {"n"}


async def warm(fleet: Fleet) -> None:
    for agent in fleet.AGENTS:
        assert (await prompt(fleet.api, agent)).status_code == 200
    assert await cached_agents(fleet) == set(fleet.AGENTS)
