"""Every route and every role, from one table; keys are shown once, stored hashed, revocable.

The table below is the authorisation contract. `test_the_table_covers_every_route` walks the
app's routes, so a route added without a row here (and without a decision about who may call
it) fails the suite.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from httpx import Response
from litestar import Litestar
from litestar.routes import ASGIRoute, HTTPRoute
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from charter.api.auth import route_access
from charter.app import create_app
from charter.db.session import Database
from charter.db.tables import api_keys, idempotency_records
from charter.domain.access import Access
from charter.settings import Settings
from tests.support.api import new_realm_id
from tests.support.receiver import Receiver
from tests.support.streams import Answer, open_stream
from tests.support.webhooks import PUBLIC_URL, deliver

# --- the table ----------------------------------------------------------------------------------

OK = "ok"  # allowed: the request is served (2xx or 3xx)
NO = "forbidden"  # 403 forbidden: the role lacks the right
HIDDEN = "hidden"  # 404 not-found: the realm is outside the key's realms (or, for a
# composition, it was never the agent key's own prompt: no existence leak)
PUBLIC = "public"  # served to anyone, with or without a key

# Columns: who calls. `agent` is an agent key calling with its own agent id (every agent path
# below names "agent-own"); `other-agent` is an agent key of the same realm for another agent;
# `outsider` is an operator key whose realms do not include the realm in the path.
ROLES = ("admin", "operator", "reader", "agent", "other-agent", "outsider")

_ADMIN = (OK, NO, NO, NO, NO, NO)
_ANY = (OK, OK, OK, OK, OK, OK)
_ANY_IN_REALM = (OK, OK, OK, OK, OK, HIDDEN)
_READ = (OK, OK, OK, NO, NO, HIDDEN)
_WRITE = (OK, OK, NO, NO, NO, HIDDEN)
_OWN_PROMPT = (OK, OK, OK, OK, NO, HIDDEN)
_OWN_COMPOSITION = (OK, OK, OK, OK, HIDDEN, HIDDEN)
_OWN_OUTCOME = (OK, OK, NO, OK, NO, HIDDEN)
_OWN_WORK = (OK, OK, NO, OK, NO, HIDDEN)  # claims, as agent-own (an operator for anyone)
_PUBLIC = (PUBLIC,) * len(ROLES)

R = "/v1/realms/{realm_id:str}"
D = R + "/directives/{directive_id:str}"
A = R + "/agents/{agent_id:str}"
W = R + "/webhooks/{webhook_id:str}"

TABLE: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "/v1/realms"): _ADMIN,
    ("GET", "/v1/realms"): _ANY,  # filtered to the key's realms
    ("GET", R): _ANY_IN_REALM,
    ("GET", R + "/tree"): _READ,
    ("POST", R + "/directives"): _WRITE,
    ("GET", R + "/directives"): _READ,
    ("GET", D): _READ,
    ("PATCH", D): _WRITE,
    ("DELETE", D): _WRITE,
    ("POST", D + "/rollback"): _WRITE,
    ("GET", D + "/versions"): _READ,
    ("GET", D + "/versions/{number:str}"): _READ,
    ("GET", D + "/diff"): _READ,
    ("GET", D + "/history"): _READ,
    ("GET", D + "/ancestry"): _READ,
    ("GET", D + "/tree"): _READ,
    ("PUT", D + "/rollout"): _WRITE,
    ("GET", D + "/rollout"): _READ,
    ("DELETE", D + "/rollout"): _WRITE,
    ("POST", D + "/rollout/promote"): _WRITE,
    ("POST", R + "/outcomes"): _OWN_OUTCOME,  # an agent key for its own agent id
    ("GET", R + "/agents"): _READ,
    ("GET", A + "/prompt"): _OWN_PROMPT,
    ("GET", A + "/profile"): _READ,
    ("PUT", A + "/profile"): _WRITE,
    ("GET", R + "/variables"): _READ,
    ("PUT", R + "/variables"): _WRITE,
    ("GET", A + "/prompt/stream"): _OWN_PROMPT,
    ("POST", A + "/inject"): _OWN_PROMPT,
    ("GET", R + "/compositions/{composition_id:str}"): _OWN_COMPOSITION,  # agent-own's
    ("GET", R + "/events"): _READ,
    ("GET", R + "/events/stream"): _READ,
    # Webhooks are operators' (docs/webhooks.md): their URLs often carry a token of the
    # receiver's, and their log maps the orchestrator's infrastructure, so readers see none.
    ("POST", R + "/webhooks"): _WRITE,
    ("GET", R + "/webhooks"): _WRITE,
    ("GET", W): _WRITE,
    ("DELETE", W): _WRITE,
    ("POST", W + "/enable"): _WRITE,
    ("GET", W + "/deliveries"): _WRITE,
    ("POST", W + "/deliveries/{delivery_id:str}/retry"): _WRITE,
    ("POST", D + "/claims"): _OWN_WORK,
    ("POST", D + "/claims/{claim_id:str}/heartbeat"): _OWN_WORK,
    ("POST", D + "/claims/{claim_id:str}/finish"): _OWN_WORK,
    ("GET", R + "/claims"): _OWN_PROMPT,  # ?agent_id=agent-own
    ("POST", D + "/schedules"): _WRITE,
    ("GET", D + "/schedules"): _READ,
    ("DELETE", D + "/schedules/{schedule_id:str}"): _WRITE,
    ("POST", "/v1/keys"): _ADMIN,
    ("GET", "/v1/keys"): _ADMIN,
    ("DELETE", "/v1/keys/{key_id:str}"): _ADMIN,
    ("GET", "/healthz"): _PUBLIC,
    ("GET", "/readyz"): _PUBLIC,
    ("GET", "/metrics"): _ANY,  # any key, unless CHARTER_METRICS_PUBLIC=1
}
# Litestar answers OPTIONS on every path itself (the Allow header, no data): public, like CORS
# preflights must be.
TABLE.update({("OPTIONS", path): _PUBLIC for _, path in list(TABLE)})

OPENAPI_PREFIX = "/schema"
# ASGI mounts, with the access their key check needs; what a key may then do over MCP is the
# REST API's to say (tests/live/test_mcp.py drives it per role).
MOUNTS = {"/mcp": Access.ANY}
# The console's pages are PUBLIC to the API's key check and make their own: a session cookie,
# the key's realms and role (api/console/pages.py). Their access is tested in a browser, role
# by role, in tests/console/ (a reader sees no write control and its writes are refused).
CONSOLE_PREFIX = "/console"
STREAMS = {A + "/prompt/stream", R + "/events/stream"}


# --- a small world: two realms, a tree, and one key per column ----------------------------------


@dataclass
class World:
    client: AsyncTestClient[Litestar]
    realm: str
    other_realm: str
    root: dict[str, Any]
    composition_id: str
    secrets: dict[str, str] = field(default_factory=dict)
    receiver: Receiver = field(default_factory=Receiver)
    delivered: tuple[str, str] | None = None  # a webhook and one delivery of it

    @property
    def base(self) -> str:
        return f"/v1/realms/{self.realm}/directives"


async def mint(
    client: AsyncTestClient[Litestar], role: str, realms: list[str], **fields: Any
) -> dict[str, Any]:
    response = await client.post("/v1/keys", json={"role": role, "realms": realms, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _create(client: AsyncTestClient[Litestar], url: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(url, json={"level": "realm", "title": "T", "body": "B", **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture(scope="module")
async def world(client: AsyncTestClient[Litestar]) -> AsyncIterator[World]:
    realm, other = new_realm_id(), new_realm_id()
    for realm_id in (realm, other):
        response = await client.post("/v1/realms", json={"id": realm_id})
        assert response.status_code == 201, response.text
    base = f"/v1/realms/{realm}/directives"
    root = await _create(client, base, title="Root", body="One", owner_agent_id="agent-own")
    patched = await client.patch(
        f"{base}/{root['id']}", json={"body": "Two"}, headers={"If-Match": '"1"'}
    )
    assert patched.status_code == 200, patched.text
    await _create(client, base, level="team", parent_id=root["id"], owner_agent_id="agent-other")
    prompt = await client.get(f"/v1/realms/{realm}/agents/agent-own/prompt")
    assert prompt.status_code == 200, prompt.text
    world = World(client, realm, other, patched.json(), prompt.json()["composition_id"])
    grants: dict[str, tuple[str, list[str], dict[str, str]]] = {
        "admin": ("admin", ["*"], {}),
        "operator": ("operator", [realm], {}),
        "reader": ("reader", [realm], {}),
        "agent": ("agent", [realm], {"agent_id": "agent-own"}),
        "other-agent": ("agent", [realm], {"agent_id": "agent-other"}),
        "outsider": ("operator", [other], {}),
    }
    for column, (role, realms, extra) in grants.items():
        key = await mint(client, role, realms, name=f"auth {column}", **extra)
        world.secrets[column] = key["key"]
    async with world.receiver:
        yield world


# --- one request per route, made valid so an allowed call succeeds ------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    json: Any = None


Builder = Callable[[World], Awaitable[Call]]


async def _fresh(w: World) -> dict[str, Any]:
    """A new node (revision 1) for a write to act on, so every caller's write can succeed."""
    return await _create(w.client, w.base, title="Fresh", body="Fresh")


async def _patch(w: World) -> Call:
    node = await _fresh(w)
    return Call("PATCH", f"{w.base}/{node['id']}", {"title": "Renamed", "expected_revision": 1})


async def _deactivate(w: World) -> Call:
    node = await _fresh(w)
    return Call("DELETE", f"{w.base}/{node['id']}", {"expected_revision": 1})


async def _rollback(w: World) -> Call:
    node = await _fresh(w)
    response = await w.client.patch(
        f"{w.base}/{node['id']}", json={"body": "Second"}, headers={"If-Match": '"1"'}
    )
    assert response.status_code == 200, response.text
    return Call("POST", f"{w.base}/{node['id']}/rollback", {"version": 1, "expected_revision": 2})


async def _drafted(w: World) -> dict[str, Any]:
    """A fresh node with a draft version 2 (revision 2)."""
    node = await _fresh(w)
    response = await w.client.patch(
        f"{w.base}/{node['id']}",
        json={"body": "Draft", "activate": False},
        headers={"If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    drafted: dict[str, Any] = response.json()
    return drafted


async def _rolling(w: World) -> dict[str, Any]:
    """A fresh node rolling its draft out (revision 3)."""
    node = await _drafted(w)
    response = await w.client.put(
        f"{w.base}/{node['id']}/rollout",
        json={"version": 2, "percent": 10},
        headers={"If-Match": '"2"'},
    )
    assert response.status_code == 200, response.text
    rolling: dict[str, Any] = response.json()
    return rolling


async def _put_rollout(w: World) -> Call:
    node = await _drafted(w)
    body = {"version": 2, "percent": 10, "expected_revision": 2}
    return Call("PUT", f"{w.base}/{node['id']}/rollout", body)


async def _get_rollout(w: World) -> Call:
    node = await _rolling(w)
    return Call("GET", f"{w.base}/{node['id']}/rollout")


async def _abort_rollout(w: World) -> Call:
    node = await _rolling(w)
    return Call("DELETE", f"{w.base}/{node['id']}/rollout", {"expected_revision": 3})


async def _promote_rollout(w: World) -> Call:
    node = await _rolling(w)
    return Call("POST", f"{w.base}/{node['id']}/rollout/promote", {"expected_revision": 3})


async def _put_profile(w: World) -> Call:
    """A fresh agent's first profile (revision 0), so every caller's write can succeed."""
    return Call(
        "PUT",
        f"/v1/realms/{w.realm}/agents/{new_realm_id()}/profile",
        {
            "variables": {"tone": "calm"},
            "expected_revision": 0,
        },
    )


async def _put_defaults(w: World) -> Call:
    url = f"/v1/realms/{w.realm}/variables"
    current = await w.client.get(url)
    assert current.status_code == 200, current.text
    revision = current.json()["revision"]
    body = {"variables": {"tone": f"calm {revision}"}, "expected_revision": revision}
    return Call("PUT", url, body)


async def _revoke(w: World) -> Call:
    key = await mint(w.client, "reader", [w.realm], name="to revoke")
    return Call("DELETE", f"/v1/keys/{key['id']}")


def _hooks(w: World) -> str:
    return f"/v1/realms/{w.realm}/webhooks"


async def _hook(w: World) -> str:
    body = {"url": PUBLIC_URL, "events": ["*"]}
    response = await w.client.post(_hooks(w), json=body)
    assert response.status_code == 201, response.text
    return f"{_hooks(w)}/{response.json()['id']}"


async def _delivery(w: World) -> str:
    """A webhook with one delivery logged, to the world's receiver (made once)."""
    if w.delivered is None:
        response = await w.client.post(_hooks(w), json={"url": w.receiver.url, "events": ["*"]})
        assert response.status_code == 201, response.text
        hook = response.json()
        w.receiver.secret = hook["secret"]
        await _fresh(w)
        await deliver(w.client)
        log = await w.client.get(f"{_hooks(w)}/{hook['id']}/deliveries")
        w.delivered = (hook["id"], log.json()["items"][0]["id"])
    hook_id, delivery_id = w.delivered
    return f"{_hooks(w)}/{hook_id}/deliveries/{delivery_id}"


def _on_hook(method: str, tail: str = "") -> Builder:
    async def build(w: World) -> Call:
        return Call(method, await _hook(w) + tail)

    return build


async def _retry(w: World) -> Call:
    return Call("POST", await _delivery(w) + "/retry")


async def _claim(w: World) -> Call:
    # agent-own's: an agent key claims only its own agent's directives.
    node = await _create(w.client, w.base, title="Fresh", body="Fresh", owner_agent_id="agent-own")
    return Call(
        "POST", f"{w.base}/{node['id']}/claims", {"agent_id": "agent-own", "lease_seconds": 60}
    )


async def _held(w: World) -> str:
    """A live claim of agent-own's on a fresh node, made by the admin: its URL."""
    node = await _fresh(w)
    url = f"{w.base}/{node['id']}/claims"
    made = await w.client.post(url, json={"agent_id": "agent-own", "lease_seconds": 60})
    assert made.status_code == 201, made.text
    return f"{url}/{made.json()['id']}"


async def _heartbeat(w: World) -> Call:
    return Call("POST", f"{await _held(w)}/heartbeat", {})


async def _finish(w: World) -> Call:
    return Call("POST", f"{await _held(w)}/finish", {"outcome": "failed"})


_LATER = {"at": "2099-01-01T00:00:00Z", "action": {"status": "paused"}}


async def _schedule(w: World) -> Call:
    node = await _fresh(w)
    return Call("POST", f"{w.base}/{node['id']}/schedules", _LATER)


async def _cancel(w: World) -> Call:
    node = await _fresh(w)
    made = await w.client.post(f"{w.base}/{node['id']}/schedules", json=_LATER)
    assert made.status_code == 201, made.text
    return Call("DELETE", f"{w.base}/{node['id']}/schedules/{made.json()['id']}")


def _get(url: Callable[[World], str]) -> Builder:
    async def build(w: World) -> Call:
        return Call("GET", url(w))

    return build


def _post(url: Callable[[World], str], body: Callable[[World], Any]) -> Builder:
    async def build(w: World) -> Call:
        return Call("POST", url(w), body(w))

    return build


def _node(w: World) -> str:
    return f"{w.base}/{w.root['id']}"


def _agent(w: World) -> str:
    return f"/v1/realms/{w.realm}/agents/agent-own"


REQUESTS: dict[tuple[str, str], Builder] = {
    ("POST", "/v1/realms"): _post(lambda w: "/v1/realms", lambda w: {"id": new_realm_id()}),
    ("GET", "/v1/realms"): _get(lambda w: "/v1/realms"),
    ("GET", R): _get(lambda w: f"/v1/realms/{w.realm}"),
    ("GET", R + "/tree"): _get(lambda w: f"/v1/realms/{w.realm}/tree"),
    ("POST", R + "/directives"): _post(
        lambda w: w.base, lambda w: {"level": "realm", "title": "New", "body": "New"}
    ),
    ("GET", R + "/directives"): _get(lambda w: w.base),
    ("GET", D): _get(_node),
    ("PATCH", D): _patch,
    ("DELETE", D): _deactivate,
    ("POST", D + "/rollback"): _rollback,
    ("GET", D + "/versions"): _get(lambda w: f"{_node(w)}/versions"),
    ("GET", D + "/versions/{number:str}"): _get(lambda w: f"{_node(w)}/versions/1"),
    ("GET", D + "/diff"): _get(lambda w: f"{_node(w)}/diff?from=1&to=2"),
    ("GET", D + "/history"): _get(lambda w: f"{_node(w)}/history"),
    ("GET", D + "/ancestry"): _get(lambda w: f"{_node(w)}/ancestry"),
    ("GET", D + "/tree"): _get(lambda w: f"{_node(w)}/tree"),
    ("PUT", D + "/rollout"): _put_rollout,
    ("GET", D + "/rollout"): _get_rollout,
    ("DELETE", D + "/rollout"): _abort_rollout,
    ("POST", D + "/rollout/promote"): _promote_rollout,
    ("POST", R + "/outcomes"): _post(
        lambda w: f"/v1/realms/{w.realm}/outcomes",
        lambda w: {
            "composition_id": w.composition_id,
            "agent_id": "agent-own",
            "metric": "success",
            "value": 1.0,
        },
    ),
    ("GET", R + "/agents"): _get(lambda w: f"/v1/realms/{w.realm}/agents"),
    ("GET", A + "/prompt"): _get(lambda w: f"{_agent(w)}/prompt"),
    ("GET", A + "/profile"): _get(lambda w: f"{_agent(w)}/profile"),
    ("PUT", A + "/profile"): _put_profile,
    ("GET", R + "/variables"): _get(lambda w: f"/v1/realms/{w.realm}/variables"),
    ("PUT", R + "/variables"): _put_defaults,
    ("GET", A + "/prompt/stream"): _get(lambda w: f"{_agent(w)}/prompt/stream"),
    ("POST", A + "/inject"): _post(
        lambda w: f"{_agent(w)}/inject",
        lambda w: {"messages": [{"role": "user", "content": "Hello"}]},
    ),
    ("GET", R + "/compositions/{composition_id:str}"): _get(
        lambda w: f"/v1/realms/{w.realm}/compositions/{w.composition_id}"
    ),
    ("GET", R + "/events"): _get(lambda w: f"/v1/realms/{w.realm}/events"),
    ("GET", R + "/events/stream"): _get(lambda w: f"/v1/realms/{w.realm}/events/stream"),
    ("POST", R + "/webhooks"): _post(_hooks, lambda w: {"url": PUBLIC_URL, "events": ["*"]}),
    ("GET", R + "/webhooks"): _get(_hooks),
    ("GET", W): _on_hook("GET"),
    ("DELETE", W): _on_hook("DELETE"),
    ("POST", W + "/enable"): _on_hook("POST", "/enable"),
    ("GET", W + "/deliveries"): _on_hook("GET", "/deliveries"),
    ("POST", W + "/deliveries/{delivery_id:str}/retry"): _retry,
    ("POST", D + "/claims"): _claim,
    ("POST", D + "/claims/{claim_id:str}/heartbeat"): _heartbeat,
    ("POST", D + "/claims/{claim_id:str}/finish"): _finish,
    ("GET", R + "/claims"): _get(lambda w: f"/v1/realms/{w.realm}/claims?agent_id=agent-own"),
    ("POST", D + "/schedules"): _schedule,
    ("GET", D + "/schedules"): _get(lambda w: f"{_node(w)}/schedules"),
    ("DELETE", D + "/schedules/{schedule_id:str}"): _cancel,
    ("POST", "/v1/keys"): _post(
        lambda w: "/v1/keys", lambda w: {"role": "reader", "realms": [w.realm]}
    ),
    ("GET", "/v1/keys"): _get(lambda w: "/v1/keys"),
    ("DELETE", "/v1/keys/{key_id:str}"): _revoke,
    ("GET", "/healthz"): _get(lambda w: "/healthz"),
    ("GET", "/readyz"): _get(lambda w: "/readyz"),
    ("GET", "/metrics"): _get(lambda w: "/metrics"),
}


def _concrete(w: World, template: str) -> str:
    """A template's path with the world's ids in it, for the OPTIONS rows."""
    return (
        template.replace("{realm_id:str}", w.realm)
        .replace("{directive_id:str}", w.root["id"])
        .replace("{number:str}", "1")
        .replace("{agent_id:str}", "agent-own")
        .replace("{composition_id:str}", w.composition_id)
        .replace("{key_id:str}", "key_x")
        .replace("{webhook_id:str}", "whk_x")
        .replace("{delivery_id:str}", "dlv_x")
    )


async def build(w: World, route: tuple[str, str]) -> Call:
    method, template = route
    if method == "OPTIONS":
        return Call("OPTIONS", _concrete(w, template))
    return await REQUESTS[route](w)


# --- sending: ordinary requests through the client, streams straight into the app ---------------


NO_KEY: dict[str, str] = {}


async def send(w: World, call: Call, headers: dict[str, str]) -> Answer:
    """Send `call` with exactly these auth headers (none: no Authorization header at all)."""
    if call.method == "GET" and any(call.url.split("?")[0].endswith(s) for s in _STREAM_ENDS):
        return await open_stream(w.client, call.url, headers)
    request = w.client.build_request(call.method, call.url, json=call.json, headers=headers)
    if "Authorization" not in headers:
        del request.headers["Authorization"]
    response: Response = await w.client.send(request)
    return Answer(response.status_code, response.headers.get("content-type", ""), response.content)


_STREAM_ENDS = ("/prompt/stream", "/events/stream")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_code(answer: Answer, status: int, code: str, context: object) -> None:
    assert answer.status == status, (context, answer.status, answer.body[:300])
    assert answer.content_type.startswith("application/problem+json"), context
    assert answer.json()["code"] == code, context


async def realm_revision(w: World) -> int:
    response = await w.client.get(f"/v1/realms/{w.realm}")
    assert response.status_code == 200, response.text
    revision: int = response.json()["revision"]
    return revision


# --- the tests -----------------------------------------------------------------------------------


def test_the_table_covers_every_route(app: Litestar) -> None:
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        if route.path in MOUNTS:
            assert isinstance(route, ASGIRoute), route.path
            assert route_access(route.route_handler) is MOUNTS[route.path]
            continue
        assert isinstance(route, HTTPRoute), f"{route.path}: not an HTTP route; add it here"
        if route.path == OPENAPI_PREFIX or route.path.startswith(OPENAPI_PREFIX + "/"):
            continue
        if route.path == CONSOLE_PREFIX or route.path.startswith(CONSOLE_PREFIX + "/"):
            assert all(route_access(h) is Access.PUBLIC for h in route.route_handlers)
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                served.add((str(method), route.path))
                public = route_access(handler) is Access.PUBLIC  # raises if none is declared
                row = TABLE.get((str(method), route.path))
                assert row is None or (row == _PUBLIC) == public, (method, route.path)
    assert served - TABLE.keys() == set(), "routes without a row in the authorisation table"
    assert TABLE.keys() - served == set(), "rows for routes the app no longer has"
    assert {r for r in TABLE if r[0] != "OPTIONS"} == REQUESTS.keys()


@pytest.mark.parametrize("route", sorted(TABLE), ids=lambda r: f"{r[0]} {r[1]}")
async def test_each_role_gets_what_the_table_says(world: World, route: tuple[str, str]) -> None:
    for column, expected in zip(ROLES, TABLE[route], strict=True):
        call = await build(world, route)
        writes = call.method not in ("GET", "OPTIONS") and "/v1/realms/{realm_id" in route[1]
        before = await realm_revision(world) if writes else None
        answer = await send(world, call, bearer(world.secrets[column]))
        context = (column, route)
        if expected in (OK, PUBLIC):
            assert answer.status < 400, (context, answer.status, answer.body[:300])
            if route[1] in STREAMS and route[0] == "GET":
                assert answer.content_type.startswith("text/event-stream"), context
            continue
        if expected == NO:
            assert_code(answer, 403, "forbidden", context)
        else:
            assert_code(answer, 404, "not-found", context)
        if before is not None:
            assert await realm_revision(world) == before, context


BAD_CREDENTIALS = {
    "no-header": NO_KEY,
    "empty": {"Authorization": ""},
    "basic-scheme": {"Authorization": "Basic YWRtaW46YWRtaW4="},
    "bearer-without-key": {"Authorization": "Bearer"},
    "bearer-blank": {"Authorization": "Bearer    "},
    "key-without-scheme": {"Authorization": "chk_test-admin-key"},
    "unknown-key": {"Authorization": "Bearer chk_this-key-was-never-made"},
}


@pytest.mark.parametrize("route", sorted(TABLE), ids=lambda r: f"{r[0]} {r[1]}")
async def test_without_a_valid_key_every_private_route_is_401(
    world: World, route: tuple[str, str]
) -> None:
    public = TABLE[route] == _PUBLIC
    for name, headers in BAD_CREDENTIALS.items():
        call = await build(world, route)
        answer = await send(world, call, headers)
        if public:
            assert answer.status < 400, (name, route, answer.status)
        else:
            assert_code(answer, 401, "unauthenticated", (name, route))


async def test_a_key_limited_to_one_realm_lists_only_that_realm(world: World) -> None:
    listed: list[str] = []
    cursor: str | None = None
    while True:
        url = "/v1/realms?limit=500" + (f"&cursor={cursor}" if cursor else "")
        answer = await send(world, Call("GET", url), bearer(world.secrets["reader"]))
        assert answer.status == 200
        page = answer.json()
        listed += [realm["id"] for realm in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert listed == [world.realm]
    outsider = await send(world, Call("GET", "/v1/realms"), bearer(world.secrets["outsider"]))
    assert [realm["id"] for realm in outsider.json()["items"]] == [world.other_realm]


async def test_an_agent_key_reads_only_its_own_agent(world: World) -> None:
    own, other = bearer(world.secrets["agent"]), bearer(world.secrets["other-agent"])
    inject = {"messages": [{"role": "user", "content": "Hi"}]}
    agents = f"/v1/realms/{world.realm}/agents"
    calls = [
        Call("GET", f"{agents}/agent-own/prompt"),
        Call("GET", f"{agents}/agent-own/prompt/stream"),
        Call("POST", f"{agents}/agent-own/inject", inject),
    ]
    for call in calls:
        assert (await send(world, call, own)).status == 200, call
        assert_code(await send(world, call, other), 403, "forbidden", call)
    theirs = Call("GET", f"{agents}/agent-other/prompt")
    assert (await send(world, theirs, other)).status == 200
    assert_code(await send(world, theirs, own), 403, "forbidden", theirs)
    # A composition id is not a capability: another agent's composition is not found, exactly
    # like an id never recorded, so the key cannot tell that it exists.
    composition = Call("GET", f"/v1/realms/{world.realm}/compositions/{world.composition_id}")
    document = await send(world, composition, own)
    assert document.status == 200
    assert document.json()["agent_id"] == "agent-own"
    refused = await send(world, composition, other)
    random = Call("GET", f"/v1/realms/{world.realm}/compositions/cmp_{'ab' * 32}")
    unknown = await send(world, random, other)
    assert_code(refused, 404, "not-found", composition)
    assert_code(unknown, 404, "not-found", random)
    assert refused.json()["detail"].replace(world.composition_id, "?") == unknown.json()[
        "detail"
    ].replace(f"cmp_{'ab' * 32}", "?")


async def test_the_secret_is_shown_once_and_only_its_hash_is_stored(
    world: World, backend: str, db: Database, pg_admin_db: Database
) -> None:
    created = await mint(world.client, "reader", [world.realm], name="shown once")
    secret = created["key"]
    assert secret.startswith("chk_")
    assert set(created) >= {"id", "key", "role", "realms", "agent_id", "name"}
    listed: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        response = await world.client.get("/v1/keys", params=params)
        assert response.status_code == 200, response.text
        assert secret not in response.text
        listed += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    mine = [item for item in listed if item["id"] == created["id"]]
    assert len(mine) == 1
    assert "key" not in mine[0]
    assert all("key" not in item and "secret_hash" not in item for item in listed)

    # The row, read as the schema owner on PostgreSQL: the SHA-256, never the secret.
    owner = pg_admin_db if backend == "postgres" else db
    async with owner.transaction() as conn:
        row = (await conn.execute(select(api_keys).where(api_keys.c.id == created["id"]))).one()
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    for column, value in row._mapping.items():
        assert secret not in str(value), column
        assert secret.removeprefix("chk_") not in str(value), column


async def test_revocation_refuses_the_very_next_request(world: World) -> None:
    created = await mint(world.client, "reader", [world.realm], name="revoked here")
    key = bearer(created["key"])
    probe = Call("GET", f"/v1/realms/{world.realm}")
    for _ in range(2):  # warm the keyring: the second is served from its cache
        assert (await send(world, probe, key)).status == 200
    response = await world.client.delete(f"/v1/keys/{created['id']}")
    assert response.status_code == 204, response.text
    assert_code(await send(world, probe, key), 401, "unauthenticated", "after revocation")
    listed = await world.client.get("/v1/keys", params={"limit": 500})
    assert listed.status_code == 200


REVOCATION_SECONDS = 1.0


@pytest.fixture
async def second_app(settings: Settings, backend: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """Another server process's worth of app on the same PostgreSQL and Redis."""
    if backend != "postgres":
        pytest.skip("a second process shares PostgreSQL and Redis")
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        bus = app.state.runtime.bus
        deadline = time.monotonic() + 5
        while not bus.subscribed.is_set():  # until it is, the app caches no key
            assert time.monotonic() < deadline, "the second app never subscribed"
            await asyncio.sleep(0.01)
        yield client


async def test_revocation_reaches_a_second_app_within_a_second(
    world: World,
    second_app: AsyncTestClient[Litestar],
) -> None:
    created = await mint(world.client, "reader", [world.realm], name="revoked everywhere")
    secret = created["key"]
    url = f"/v1/realms/{world.realm}"
    for client in (world.client, second_app, world.client, second_app):
        response = await client.get(url, headers=bearer(secret))
        assert response.status_code == 200, response.text
    # The second app now answers this key from its cache, without asking the database: only
    # the broadcast can tell it the key is gone.
    keyring = second_app.app.state.runtime.keyring
    assert keyring.coherent
    assert secret in keyring._by_secret

    response = await world.client.delete(f"/v1/keys/{created['id']}")
    assert response.status_code == 204, response.text
    revoked = time.monotonic()
    assert (await world.client.get(url, headers=bearer(secret))).status_code == 401
    while True:
        response = await second_app.get(url, headers=bearer(secret))
        elapsed = time.monotonic() - revoked
        if response.status_code == 401:
            break
        assert response.status_code == 200, response.text
        assert elapsed < REVOCATION_SECONDS, "the second app still accepts a revoked key"
        await asyncio.sleep(0.005)
    print(f"revocation reached the second app in {elapsed * 1000:.1f} ms")  # shown with -s
    assert response.json()["code"] == "unauthenticated"


async def test_the_secret_is_not_kept_in_idempotency_records(
    client: AsyncTestClient[Litestar], db: Database
) -> None:
    key = "mint-" + uuid.uuid4().hex
    created = await client.post(
        "/v1/keys", json={"role": "reader", "realms": ["*"]}, headers={"Idempotency-Key": key}
    )
    assert created.status_code == 201
    secret = created.json()["key"]
    async with db.transaction("") as conn:
        query = select(idempotency_records.c.body).where(idempotency_records.c.key == key)
        bodies = [bytes(body) for body in (await conn.execute(query)).scalars()]
    assert len(bodies) == 1
    assert secret.encode() not in bodies[0]
