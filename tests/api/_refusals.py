"""Helpers for refused requests: the problem document, and proof that nothing was written."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from httpx import Response

from tests.conftest import Api

# Distinctive text put into titles, bodies and messages: an error must never echo it back.
MARKER = "qxz-MARKER-7f3a"

# Every stable code §2 names, plus `already-exists` (a realm created twice).
KNOWN_CODES = frozenset(
    {
        "invalid-request",
        "content-too-large",
        "unauthenticated",
        "forbidden",
        "not-found",
        "already-exists",
        "stale-revision",
        "cycle-detected",
        "invalid-transition",
        "has-open-children",
        "idempotency-key-in-use",
        "idempotency-key-reused",
        "payload-too-large",
        "invalid-hierarchy",
        "precondition-required",
        "rate-limited",
        "unavailable",
    }
)


def assert_problem(response: Response, status: int, code: str) -> dict[str, Any]:
    """A problem-details document with this status and code, and no directive text in it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"].endswith(f"/{code}")
    assert problem["title"]
    assert MARKER not in response.text
    return problem


def valid_create(**fields: Any) -> dict[str, Any]:
    """A create body that would be accepted, with the marker in its text; `fields` override."""
    return {"level": "realm", "title": f"{MARKER} title", "body": f"{MARKER} body", **fields}


async def realm_state(api: Api) -> dict[str, Any]:
    """Everything a write could touch in the realm: its revision, feed, nodes and versions."""
    realm = await api.client.get(f"/v1/realms/{api.realm}")
    assert realm.status_code == 200, realm.text
    listing = await api.client.get(api.base, params={"limit": 500})
    assert listing.status_code == 200, listing.text
    nodes: dict[str, Any] = {}
    for item in listing.json()["items"]:
        versions = await api.client.get(f"{api.base}/{item['id']}/versions", params={"limit": 500})
        assert versions.status_code == 200, versions.text
        nodes[item["id"]] = {"node": await api.get(item["id"]), "versions": versions.json()}
    return {"realm": realm.json(), "events": await api.events(), "nodes": nodes}


async def assert_refused(
    api: Api, request: Awaitable[Response], status: int, code: str
) -> dict[str, Any]:
    """Send `request` (not yet awaited), expect this problem, and find the realm untouched."""
    before = await realm_state(api)
    problem = assert_problem(await request, status, code)
    assert await realm_state(api) == before
    return problem
