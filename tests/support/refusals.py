"""Helpers for refused requests: the problem document, and proof that nothing was written.

Shared by the bad-input tests (`test_bad_input*.py`, `test_problem_details.py`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable
from typing import Any

import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.api import Api, new_realm_id

# Distinctive text put into titles, bodies and messages: an error must never echo it back.
MARKER = "qxz-MARKER-7f3a"
MAX_BODY_BYTES = 32_768
MAX_REQUEST_BYTES = 256 * 1024
JSON = {"Content-Type": "application/json"}
UNSET: Any = object()

# Every stable code §2 names, plus `already-exists` (a realm created twice), and the edge's
# `request-timeout` and `unsupported-media-type` (DESIGN §12), and webhooks' `target-refused`.
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
        "request-timeout",
        "unsupported-media-type",
        "invalid-hierarchy",
        "precondition-required",
        "rate-limited",
        "unavailable",
        "target-refused",
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


def send(
    api: Api,
    method: str,
    path: str = "",
    body: Any = UNSET,
    headers: dict[str, str] | None = None,
) -> Awaitable[Response]:
    """A request under the realm's directives; bytes go as they are, anything else as JSON."""
    url = f"{api.base}{path}"
    if body is UNSET:
        return api.client.request(method, url, headers=headers)
    if isinstance(body, bytes):
        return api.client.request(method, url, content=body, headers={**JSON, **(headers or {})})
    return api.client.request(method, url, json=body, headers=headers)


def if_match(node: dict[str, Any]) -> dict[str, str]:
    return {"If-Match": f'"{node["revision"]}"'}


def cursor(raw: str) -> str:
    """A cursor in the server's encoding, holding whatever we like."""
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def valid_create(**fields: Any) -> dict[str, Any]:
    """A create body that would be accepted, with the marker in its text; `fields` override."""
    return {"level": "realm", "title": f"{MARKER} title", "body": f"{MARKER} body", **fields}


def sized_body(char: str, total_bytes: int) -> str:
    """The marker, then `char` repeated, then ASCII padding: exactly `total_bytes` of UTF-8."""
    width = len(char.encode())
    room = total_bytes - len(MARKER)
    text = MARKER + char * (room // width) + "x" * (room % width)
    assert len(text.encode()) == total_bytes
    return text


def metadata_of(size: int) -> dict[str, Any]:
    """`{"a": "xxx…"}` whose compact JSON is exactly `size` bytes."""
    metadata = {"a": "x" * (size - len('{"a":""}'))}
    assert len(json.dumps(metadata, separators=(",", ":"))) == size
    return metadata


# One byte over the body limit, yet (but for ASCII) well under it in characters.
OVERSIZED_BODIES = [
    pytest.param(sized_body("x", MAX_BODY_BYTES + 1), id="ascii"),
    pytest.param(sized_body("é", MAX_BODY_BYTES + 1), id="2-byte"),
    pytest.param(sized_body("€", MAX_BODY_BYTES + 1), id="3-byte"),
    pytest.param(sized_body("😀", MAX_BODY_BYTES + 1), id="4-byte"),
]

MALFORMED = [
    pytest.param(b'{"level": "realm", "title": ', id="truncated"),
    pytest.param(b"level=realm&title=x", id="form-encoded"),
    pytest.param(b"", id="empty"),
    pytest.param(b'{"level": "realm"} trailing', id="trailing-garbage"),
    pytest.param(b"{'level': 'realm'}", id="single-quotes"),
    pytest.param(b'{"title": "\xff\xfe"}', id="invalid-utf8"),
    pytest.param(b'{"title": "\\ud800"}', id="lone-surrogate"),
    pytest.param(b'{"metadata": {"a": NaN}}', id="nan"),
    pytest.param(b'{"metadata": {"a": 1e999}}', id="number-out-of-range"),
    pytest.param(b'{"metadata": {"a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}}", id="too-deep"),
]

NOT_OBJECTS = [
    pytest.param([], id="array"),
    pytest.param([{"level": "realm"}], id="array-of-object"),
    pytest.param("realm", id="string"),
    pytest.param(42, id="number"),
    pytest.param(True, id="boolean"),
    pytest.param(None, id="null"),
]


async def marked_root(api: Api) -> dict[str, Any]:
    """A realm node with two versions, owned and keyed, whose text carries the marker."""
    node = await api.create(
        key="root", owner_agent_id="lead", title=f"{MARKER} root", body=f"{MARKER} one"
    )
    return await api.patch(node, body=f"{MARKER} two")


async def marked_tree(api: Api, root: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`root` with a team under it and an agent under that."""
    team = await api.child(root, key="team", owner_agent_id="team-lead")
    agent = await api.child(team, level="agent", key="worker", owner_agent_id="worker")
    return {"root": root, "team": team, "agent": agent}


async def foreign_node(client: AsyncTestClient[Litestar]) -> dict[str, Any]:
    """A node in another realm: its id must be a stranger to the realm under test."""
    other = Api(client, new_realm_id())
    response = await client.post("/v1/realms", json={"id": other.realm})
    assert response.status_code == 201, response.text
    return await other.create(title="Elsewhere", body="Not yours.")


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
