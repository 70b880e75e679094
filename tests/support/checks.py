"""Shared assertions for the API tests: problem responses and "nothing was written"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from httpx import Response

from tests.support.api import Api, new_realm_id

MAX_DEPTH = 16  # the default limit of Settings.max_depth


def if_match(revision: int) -> dict[str, str]:
    return {"If-Match": f'"{revision}"'}


def assert_problem(response: Response, status: int, code: str) -> dict[str, Any]:
    """The response is a problem-details document with this status and stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    return body


async def realm_revision(api: Api) -> int:
    response = await api.client.get(f"/v1/realms/{api.realm}")
    assert response.status_code == 200, response.text
    revision: int = response.json()["revision"]
    return revision


async def versions_of(api: Api, directive_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"{api.base}/{directive_id}/versions", params={"limit": 500})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@dataclass(frozen=True)
class Snapshot:
    """What a refused write must leave untouched: the node, its versions, the realm's feed."""

    node: dict[str, Any]
    versions: list[dict[str, Any]]
    events: list[dict[str, Any]]
    realm_revision: int


async def snapshot(api: Api, directive_id: str) -> Snapshot:
    return Snapshot(
        node=await api.get(directive_id),
        versions=await versions_of(api, directive_id),
        events=await api.events(),
        realm_revision=await realm_revision(api),
    )


async def assert_unchanged(api: Api, before: Snapshot) -> None:
    after = await snapshot(api, before.node["id"])
    assert after == before


async def other_realm(api: Api) -> Api:
    """A second, empty realm on the same client: for checks across the tenant boundary."""
    realm_id = new_realm_id()
    response = await api.client.post("/v1/realms", json={"id": realm_id})
    assert response.status_code == 201, response.text
    return Api(api.client, realm_id)


async def chain(api: Api, length: int) -> list[dict[str, Any]]:
    """A realm root and teams beneath it: `length` nodes, the last at depth `length`."""
    nodes = [await api.create(title="Depth 1")]
    for depth in range(2, length + 1):
        nodes.append(await api.child(nodes[-1], title=f"Depth {depth}"))
    return nodes
