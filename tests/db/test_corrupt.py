"""Corrupt rows written straight into PostgreSQL must never hang or crash a request.

The API refuses every move that would close a cycle, so the cycles here are made by the schema
owner with plain UPDATEs. Each request then runs under a timeout: a walk without a visited set
or a depth cap would spin until it fires.
"""

from __future__ import annotations

import asyncio
import faulthandler
import itertools
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from charter.db.session import Database
from charter.db.tables import directives
from charter.domain.tree import Level
from charter.services import writes
from charter.services.writes import Actor, NewDirective
from charter.store.directives import WALK_CAP
from tests.support.api import Api, new_realm_id

ACTOR = Actor(key_id="corrupt")

# A guard, not a measurement: a request that walks a cycle forever fails here instead.
HANG_GUARD_SECONDS = 20
# wait_for cannot interrupt a pure-Python loop that never awaits; this last resort ends the
# run, with every thread's traceback, rather than let it hang.
WATCHDOG_SECONDS = 300


@pytest.fixture(autouse=True)
def _watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def pg_client(backend: str, request: pytest.FixtureRequest) -> AsyncTestClient[Litestar]:
    if backend != "postgres":
        pytest.skip("corrupt rows are written straight into PostgreSQL tables")
    client: AsyncTestClient[Litestar] = request.getfixturevalue("client")
    return client


async def _answer(call: Awaitable[Response]) -> Response:
    """The response, which must come in time and must not be a server error."""
    response = await asyncio.wait_for(call, HANG_GUARD_SECONDS)
    assert response.status_code < 500, response.text
    return response


def _tree_ids(node: dict[str, Any]) -> Iterator[str]:
    yield node["id"]
    for child in node["children"]:
        yield from _tree_ids(child)


@dataclass
class CorruptRealm:
    """root ← a ⇄ b ← c (a and b each other's parent), and s, its own parent, under root."""

    api: Api
    root: dict[str, Any]
    a: dict[str, Any]
    b: dict[str, Any]
    c: dict[str, Any]
    s: dict[str, Any]

    def url(self, node: dict[str, Any], tail: str = "") -> str:
        return f"{self.api.base}/{node['id']}{tail}"

    async def fresh(self, node: dict[str, Any]) -> dict[str, Any]:
        response = await _answer(self.api.client.get(self.url(node)))
        assert response.status_code == 200
        found: dict[str, Any] = response.json()
        return found


async def _set_parent(admin: Database, realm_id: str, node_id: str, parent_id: str) -> None:
    # RLS is FORCEd, so even the owner names the realm first (Database.transaction does so
    # with set_config(…, true) as the transaction's first statement).
    async with admin.transaction(realm_id) as conn:
        result = await conn.execute(
            update(directives)
            .where(directives.c.realm_id == realm_id, directives.c.id == node_id)
            .values(parent_id=parent_id)
        )
        assert result.rowcount == 1


@pytest.fixture
async def corrupt(pg_client: AsyncTestClient[Litestar], pg_admin_db: Database) -> CorruptRealm:
    realm_id = new_realm_id()
    response = await pg_client.post("/v1/realms", json={"id": realm_id})
    assert response.status_code == 201, response.text
    api = Api(pg_client, realm_id)
    root = await api.create(title="Root", owner_agent_id="lead")
    a = await api.child(root, title="A", owner_agent_id="agent-a")
    b = await api.child(a, title="B")
    c = await api.child(b, level="agent", title="C", owner_agent_id="agent-c")
    s = await api.child(root, title="S", owner_agent_id="agent-s")
    await _set_parent(pg_admin_db, realm_id, a["id"], b["id"])
    await _set_parent(pg_admin_db, realm_id, s["id"], s["id"])
    return CorruptRealm(api, root, a, b, c, s)


async def test_ancestry_walks_a_cycle_once(corrupt: CorruptRealm) -> None:
    expected = {
        "a": ["a", "b"],
        "b": ["b", "a"],
        "c": ["c", "b", "a"],
        "s": ["s"],
        "root": ["root"],
    }
    for name, chain in expected.items():
        node = getattr(corrupt, name)
        response = await _answer(corrupt.api.client.get(corrupt.url(node, "/ancestry")))
        assert response.status_code == 200
        body = response.json()
        assert [entry["id"] for entry in body["ancestry"]] == [
            getattr(corrupt, n)["id"] for n in chain
        ]
        assert body["depth"] == len(chain)


async def test_subtrees_show_each_node_once(corrupt: CorruptRealm) -> None:
    for node in (corrupt.a, corrupt.b, corrupt.c, corrupt.s, corrupt.root):
        response = await _answer(corrupt.api.client.get(corrupt.url(node, "/tree")))
        assert response.status_code == 200
        ids = list(_tree_ids(response.json()))
        assert ids[0] == node["id"]
        assert len(ids) == len(set(ids))
    response = await _answer(corrupt.api.client.get(corrupt.url(corrupt.a, "/tree")))
    assert set(_tree_ids(response.json())) == {corrupt.a["id"], corrupt.b["id"], corrupt.c["id"]}


async def test_the_realm_tree_and_lists_answer(corrupt: CorruptRealm) -> None:
    api = corrupt.api
    response = await _answer(api.client.get(f"/v1/realms/{api.realm}/tree"))
    assert response.status_code == 200
    ids = [i for root in response.json()["roots"] for i in _tree_ids(root)]
    assert len(ids) == len(set(ids))
    assert corrupt.root["id"] in ids
    response = await _answer(api.client.get(api.base, params={"limit": 500}))
    assert response.status_code == 200
    assert len(response.json()["items"]) == 5


async def test_reads_of_a_node_in_a_cycle_answer(corrupt: CorruptRealm) -> None:
    for node in (corrupt.a, corrupt.b, corrupt.c, corrupt.s):
        found = await corrupt.fresh(node)
        assert found["id"] == node["id"]
        for tail in ("/versions", "/history"):
            response = await _answer(corrupt.api.client.get(corrupt.url(node, tail)))
            assert response.status_code == 200


async def test_content_updates_deactivation_and_rollback_in_a_cycle_answer(
    corrupt: CorruptRealm,
) -> None:
    client = corrupt.api.client
    for node in (corrupt.a, corrupt.s):
        current = await corrupt.fresh(node)
        headers = {"If-Match": f'"{current["revision"]}"'}
        response = await _answer(
            client.patch(corrupt.url(node), json={"body": "New"}, headers=headers)
        )
        assert response.status_code == 200
        assert response.json()["changed"] is True

        headers = {"If-Match": f'"{response.json()["revision"]}"'}
        response = await _answer(
            client.post(corrupt.url(node, "/rollback"), json={"version": 1}, headers=headers)
        )
        assert response.status_code == 200

        headers = {"If-Match": f'"{response.json()["revision"]}"'}
        response = await _answer(client.delete(corrupt.url(node), headers=headers))
        assert response.status_code == 204


@pytest.mark.parametrize("name", ["a", "b", "c", "s"])
@pytest.mark.parametrize("status", ["completed", "cancelled", "paused"])
async def test_status_changes_with_cascade_in_a_cycle_answer(
    corrupt: CorruptRealm, name: str, status: str
) -> None:
    node = await corrupt.fresh(getattr(corrupt, name))
    response = await _answer(
        corrupt.api.client.patch(
            corrupt.url(node),
            json={"status": status, "cascade": True},
            headers={"If-Match": f'"{node["revision"]}"'},
        )
    )
    assert response.status_code == 200
    assert response.json()["status"] == status
    if name in ("a", "b") and status != "paused":
        # the cascade reached the other node of the cycle, once
        before = corrupt.b if name == "a" else corrupt.a
        other = await corrupt.fresh(before)
        assert other["status"] == status
        assert other["revision"] == before["revision"] + 1


@pytest.mark.parametrize("name", ["a", "b"])
async def test_closing_a_node_in_a_cycle_without_cascade_is_refused(
    corrupt: CorruptRealm, name: str
) -> None:
    node = await corrupt.fresh(getattr(corrupt, name))
    response = await _answer(
        corrupt.api.client.patch(
            corrupt.url(node),
            json={"status": "completed"},
            headers={"If-Match": f'"{node["revision"]}"'},
        )
    )
    assert response.status_code == 409
    assert response.json()["code"] == "has-open-children"


@pytest.mark.parametrize(
    ("name", "target", "status"),
    [
        ("a", "root", 200),  # out of the cycle: repairs it
        ("b", "root", 200),
        ("c", "root", 200),
        ("c", "s", 200),  # under the node that is its own parent
        ("s", "root", 200),
        ("s", "a", 200),  # into the cycle's component
        ("b", "a", 200),  # a is already b's parent: a no-op
        ("a", "c", 409),  # under its own descendant
        ("root", "c", 422),  # a realm node has no parent
        ("a", None, 422),  # nor is a team node a root
    ],
)
async def test_moves_in_and_out_of_a_cycle_answer(
    corrupt: CorruptRealm, name: str, target: str | None, status: int
) -> None:
    node = await corrupt.fresh(getattr(corrupt, name))
    parent_id = None if target is None else getattr(corrupt, target)["id"]
    response = await _answer(
        corrupt.api.client.patch(
            corrupt.url(node),
            json={"parent_id": parent_id},
            headers={"If-Match": f'"{node["revision"]}"'},
        )
    )
    assert response.status_code == status, response.text
    response = await _answer(corrupt.api.client.get(corrupt.url(node, "/ancestry")))
    assert response.status_code == 200


async def test_a_move_out_of_the_cycle_repairs_it(corrupt: CorruptRealm) -> None:
    node = await corrupt.fresh(corrupt.a)
    response = await _answer(
        corrupt.api.client.patch(
            corrupt.url(node),
            json={"parent_id": corrupt.root["id"]},
            headers={"If-Match": f'"{node["revision"]}"'},
        )
    )
    assert response.status_code == 200
    response = await _answer(corrupt.api.client.get(corrupt.url(corrupt.c, "/ancestry")))
    chain = [entry["id"] for entry in response.json()["ancestry"]]
    assert chain == [corrupt.c["id"], corrupt.b["id"], corrupt.a["id"], corrupt.root["id"]]


async def test_creating_under_a_node_in_a_cycle_answers(corrupt: CorruptRealm) -> None:
    for parent in (corrupt.b, corrupt.s):
        response = await _answer(
            corrupt.api.client.post(
                corrupt.api.base,
                json={"level": "agent", "title": "New", "body": "Body", "parent_id": parent["id"]},
            )
        )
        assert response.status_code in (201, 422), response.text


@pytest.mark.parametrize("agent", ["agent-a", "agent-c", "agent-s", "lead"])
async def test_prompts_of_agents_in_a_cycle_answer(corrupt: CorruptRealm, agent: str) -> None:
    api = corrupt.api
    response = await _answer(api.client.get(f"/v1/realms/{api.realm}/agents/{agent}/prompt"))
    assert response.status_code == 200


CHAIN_LENGTH = 300  # past WALK_CAP (256), the hard bound on every walk


@pytest.fixture
async def long_chain(
    pg_client: AsyncTestClient[Litestar], pg_db: Database, pg_admin_db: Database
) -> tuple[Api, list[str]]:
    """A realm root and CHAIN_LENGTH agents, then re-linked into one chain far past the depth
    limit (each agent the parent of the next); the deepest is owned by `deep-agent`."""
    realm_id = new_realm_id()
    response = await pg_client.post("/v1/realms", json={"id": realm_id})
    assert response.status_code == 201, response.text
    async with pg_db.transaction(realm_id) as conn:
        root = await writes.create(
            conn, realm_id, ACTOR, NewDirective(Level.REALM, "Root", "Body"), 16
        )
        ids = [root.id]
        for n in range(CHAIN_LENGTH):
            owner = "deep-agent" if n == CHAIN_LENGTH - 1 else None
            new = NewDirective(
                Level.AGENT, f"Agent {n}", "Body", parent_id=root.id, owner_agent_id=owner
            )
            ids.append((await writes.create(conn, realm_id, ACTOR, new, 16)).id)
    async with pg_admin_db.transaction(realm_id) as conn:
        for parent, child in itertools.pairwise(ids[1:]):
            await conn.execute(
                update(directives)
                .where(directives.c.realm_id == realm_id, directives.c.id == child)
                .values(parent_id=parent)
            )
    return Api(pg_client, realm_id), ids


@pytest.mark.parametrize("closed", [False, True], ids=["chain", "ring"])
async def test_a_chain_past_the_walk_cap_answers(
    long_chain: tuple[Api, list[str]], pg_admin_db: Database, closed: bool
) -> None:
    api, ids = long_chain
    if closed:  # the first agent's parent becomes the last: one ring of CHAIN_LENGTH nodes
        await _set_parent(pg_admin_db, api.realm, ids[1], ids[-1])
    client = api.client

    response = await _answer(client.get(f"{api.base}/{ids[-1]}/ancestry"))
    assert response.status_code == 200
    chain = [entry["id"] for entry in response.json()["ancestry"]]
    assert chain[0] == ids[-1]
    assert len(chain) == len(set(chain))
    assert len(chain) <= WALK_CAP

    for top in (ids[0], ids[1]):
        response = await _answer(client.get(f"{api.base}/{top}/tree"))
        assert response.status_code == 200
        found = list(_tree_ids(response.json()))
        assert len(found) == len(set(found))
    response = await _answer(client.get(f"/v1/realms/{api.realm}/tree"))
    assert response.status_code == 200
    response = await _answer(client.get(f"/v1/realms/{api.realm}/agents/deep-agent/prompt"))
    assert response.status_code == 200, response.text

    node = await api.get(ids[1])
    await _answer(
        client.patch(
            f"{api.base}/{ids[1]}",
            json={"status": "cancelled", "cascade": True},
            headers={"If-Match": f'"{node["revision"]}"'},
        )
    )
    node = await api.get(ids[-1])
    await _answer(
        client.patch(
            f"{api.base}/{ids[-1]}",
            json={"body": "Still answers."},
            headers={"If-Match": f'"{node["revision"]}"'},
        )
    )
