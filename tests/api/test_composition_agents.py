"""A composition belongs to every agent whose prompt it is or was (DESIGN §12).

Agents with identical layers share a `cmp_` id; each of their keys resolves it. An agent key
asking for a composition that was never its own gets the same 404 as for an id never made.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from charter.db.session import Database
from charter.db.tables import composition_agents
from tests.support.api import Api
from tests.support.checks import assert_problem

NEVER_MADE = "cmp_" + "0f" * 32


async def _agent_key(api: Api, agent: str) -> dict[str, str]:
    body = {"role": "agent", "realms": [api.realm], "agent_id": agent, "name": agent}
    response = await api.client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


async def _prompt(api: Api, agent: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await api.client.get(
        f"/v1/realms/{api.realm}/agents/{agent}/prompt", headers=headers
    )
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def _resolve(api: Api, composition_id: str, headers: dict[str, str]) -> Any:
    return await api.client.get(
        f"/v1/realms/{api.realm}/compositions/{composition_id}", headers=headers
    )


async def test_an_agent_that_inherits_a_prompt_resolves_it(api: Api) -> None:
    # Ownership moves from alpha to beta: beta's layers are alpha's were, so the same id.
    root = await api.create(title="Root", body="Shared", owner_agent_id="alpha")
    alpha, beta = await _agent_key(api, "alpha"), await _agent_key(api, "beta")
    before = await _prompt(api, "alpha", alpha)
    await api.patch(root, owner_agent_id="beta")
    after = await _prompt(api, "beta", beta)
    assert after["composition_id"] == before["composition_id"]

    resolved = await _resolve(api, after["composition_id"], beta)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["agent_id"] == "beta"
    assert resolved.json()["text"] == after["text"]
    # It was alpha's prompt too: alpha still resolves it.
    was = await _resolve(api, before["composition_id"], alpha)
    assert was.status_code == 200, was.text
    assert was.json()["agent_id"] == "alpha"


async def test_agents_with_identical_layers_each_resolve_the_shared_id(api: Api) -> None:
    # Each agent's only node is paused: both compositions are empty, so one id.
    root = await api.create(title="Root", body="Root body")
    for agent in ("alpha", "beta"):
        node = await api.child(root, level="agent", owner_agent_id=agent)
        await api.patch(node, status="paused")
    alpha, beta = await _agent_key(api, "alpha"), await _agent_key(api, "beta")
    first = await _prompt(api, "alpha", alpha)
    second = await _prompt(api, "beta", beta)
    assert first["composition_id"] == second["composition_id"]
    for agent, headers in (("alpha", alpha), ("beta", beta)):
        resolved = await _resolve(api, first["composition_id"], headers)
        assert resolved.status_code == 200, (agent, resolved.text)
        assert resolved.json()["agent_id"] == agent


async def test_another_agents_composition_is_as_unknown_as_one_never_made(api: Api) -> None:
    await api.create(title="Root", body="Alpha's own", owner_agent_id="alpha")
    alpha, gamma = await _agent_key(api, "alpha"), await _agent_key(api, "gamma")
    theirs = (await _prompt(api, "alpha", alpha))["composition_id"]
    refused = assert_problem(await _resolve(api, theirs, gamma), 404, "not-found")
    unknown = assert_problem(await _resolve(api, NEVER_MADE, gamma), 404, "not-found")
    assert set(refused) == set(unknown)
    assert refused["detail"].replace(theirs, NEVER_MADE) == unknown["detail"]
    # Keys that may read the realm still resolve it, and name the agent that first had it.
    admin = await api.client.get(f"/v1/realms/{api.realm}/compositions/{theirs}")
    assert admin.status_code == 200, admin.text
    assert admin.json()["agent_id"] == "alpha"


async def test_an_unrecorded_pair_is_recorded_when_it_is_the_agents_current_prompt(
    api: Api, backend: str, db: Database, pg_admin_db: Database
) -> None:
    # What a prompt cached by a server older than migration 0009 leaves: no pair for beta.
    root = await api.create(title="Root", body="Shared", owner_agent_id="alpha")
    alpha, beta = await _agent_key(api, "alpha"), await _agent_key(api, "beta")
    shared = (await _prompt(api, "alpha", alpha))["composition_id"]
    await api.patch(root, owner_agent_id="beta")
    assert (await _prompt(api, "beta", beta))["composition_id"] == shared
    owner = pg_admin_db if backend == "postgres" else db  # the app role may not delete
    pairs = composition_agents.c
    async with owner.transaction(api.realm) as conn:
        forget = delete(composition_agents).where(
            pairs.realm_id == api.realm, pairs.agent_id == "beta"
        )
        assert (await conn.execute(forget)).rowcount == 1
    resolved = await _resolve(api, shared, beta)
    assert resolved.status_code == 200, resolved.text
    async with owner.transaction(api.realm) as conn:
        again = select(pairs.agent_id).where(pairs.realm_id == api.realm, pairs.agent_id == "beta")
        assert list((await conn.execute(again)).scalars()) == ["beta"]
