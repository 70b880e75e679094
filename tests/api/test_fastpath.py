"""The pre-routing answer for cached prompt reads and their long polls: identical bytes, or it
declines."""

from __future__ import annotations

import re
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import HTTPScope

from charter.api import fastpath
from charter.api.fastpath import cached_read
from charter.runtime import Runtime
from tests.support.api import ADMIN_KEY, Api
from tests.support.checks import assert_problem

# A query parameter the fast path does not read (and the handler ignores): always routed.
ROUTED: dict[str, str | int] = {"wait": 0, "via": "router"}


def _runtime(app: Litestar) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


def _scope(
    path: str,
    key: str | None,
    *,
    method: str = "GET",
    query: bytes = b"",
    raw_path: bytes | None = None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> HTTPScope:
    """A scope as the server makes it: `raw_path` is the path as sent (before decoding)."""
    auth = [(b"authorization", f"Bearer {key}".encode())] if key else []
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode() if raw_path is None else raw_path,
        "query_string": query,
        "headers": [*auth, *headers],
    }
    return scope  # type: ignore[return-value]


async def _agent_key(api: Api, agent: str, realm: str | None = None) -> dict[str, Any]:
    body = {"role": "agent", "realms": [realm or api.realm], "agent_id": agent}
    response = await api.client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _comparable(response: Any) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body; a request id the server made is checked, then left out (two
    requests get two ids; test_the_same_request_id_gives_the_same_headers compares them)."""
    headers = {k.lower(): v for k, v in response.headers.items()}
    made = headers.pop("x-request-id")
    assert re.fullmatch(r"[0-9a-f]{16}", made), made
    return response.status_code, headers, response.content


async def test_the_fast_answer_is_byte_identical_to_the_routed_one(api: Api) -> None:
    await api.create(title="Root", body="root body", owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    routed = await api.client.get(url, params=ROUTED)
    assert routed.status_code == 200
    assert cached_read(_runtime(api.client.app), _scope(url, ADMIN_KEY)) is not None
    fast = await api.client.get(url)
    assert _comparable(fast) == _comparable(routed)

    tag = {"If-None-Match": routed.headers["etag"]}
    routed_304 = await api.client.get(url, params=ROUTED, headers=tag)
    fast_304 = await api.client.get(url, headers=tag)
    assert routed_304.status_code == 304
    assert _comparable(fast_304) == _comparable(routed_304)

    other = {"If-None-Match": '"cmp_other", W/"x"'}
    assert _comparable(await api.client.get(url, headers=other)) == _comparable(routed)


async def test_a_change_is_seen_through_the_fast_path(api: Api) -> None:
    root = await api.create(title="Root", body="before", owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    assert (await api.client.get(url)).json()["text"] == "# Root\n\nbefore"
    assert (await api.client.get(url)).json()["text"] == "# Root\n\nbefore"  # cached now
    await api.patch(root, body="after")
    assert (await api.client.get(url)).json()["text"] == "# Root\n\nafter"


async def test_it_declines_what_it_cannot_answer_exactly(api: Api) -> None:
    await api.create(title="Root", body="b", owner_agent_id="pilot")
    runtime = _runtime(api.client.app)
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    pilot = await _agent_key(api, "pilot")
    other_agent = await _agent_key(api, "navigator")
    assert (await api.client.get(url)).status_code == 200  # warm the local tier
    assert (
        await api.client.get(url, headers={"Authorization": f"Bearer {pilot['key']}"})
    ).status_code == 200  # the keyring now knows the agent key
    assert cached_read(runtime, _scope(url, pilot["key"])) is not None

    declined = {
        "another query string": _scope(url, ADMIN_KEY, query=b"wait=1&x=2"),
        "a wait it does not allow": _scope(url, ADMIN_KEY, query=b"wait=61"),
        "a wait that is no number": _scope(url, ADMIN_KEY, query=b"wait=soon"),
        "another method": _scope(url, ADMIN_KEY, method="POST"),
        "no key": _scope(url, None),
        "a key never seen": _scope(url, "chk_never-seen"),
        "another agent's key": _scope(url, other_agent["key"]),
        "a cache miss": _scope(f"/v1/realms/{api.realm}/agents/nobody/prompt", ADMIN_KEY),
        "a bad realm id": _scope("/v1/realms/Bad_Realm/agents/pilot/prompt", ADMIN_KEY),
        "a bad agent id": _scope(f"/v1/realms/{api.realm}/agents/a%20b/prompt", ADMIN_KEY),
        "a longer path": _scope(f"/v1/realms/{api.realm}/agents/x/pilot/prompt", ADMIN_KEY),
        "the stream": _scope(f"{url}/stream", ADMIN_KEY),
        # What the edge looks at is left to it (and then to the routed handler):
        "an encoded path": _scope(url, ADMIN_KEY, raw_path=url.replace("/v1/", "/v1%2F").encode()),
        "a path with an escape": _scope(url, ADMIN_KEY, raw_path=url.replace("p", "%70").encode()),
        "a header given twice": _scope(url, ADMIN_KEY, headers=((b"authorization", b"Bearer x"),)),
        "a body": _scope(url, ADMIN_KEY, headers=((b"content-length", b"2"),)),
        "a streamed body": _scope(url, ADMIN_KEY, headers=((b"transfer-encoding", b"chunked"),)),
        "an If-Match": _scope(url, ADMIN_KEY, headers=((b"if-match", b'"1"'),)),
    }
    for why, scope in declined.items():
        assert cached_read(runtime, scope) is None, why
    polled = cached_read(runtime, _scope(url, pilot["key"], query=b"wait=30"))
    assert polled is not None
    assert polled.wait == 30


async def test_an_encoded_slash_is_refused_even_for_a_cached_read(api: Api) -> None:
    """The fast path answers before the edge, so it must not take what the edge refuses: a
    path that decodes to a prompt path only through its `%2F`."""
    await api.create(title="Root", body="b", owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    assert (await api.client.get(url)).status_code == 200  # cached
    assert cached_read(_runtime(api.client.app), _scope(url, ADMIN_KEY)) is not None
    encoded = url.replace("/v1/", "/v1%2F")
    assert_problem(await api.client.get(encoded), 400, "invalid-request")


async def test_a_revoked_key_is_refused_at_once(
    api: Api, client: AsyncTestClient[Litestar]
) -> None:
    await api.create(title="Root", body="b", owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    pilot = await _agent_key(api, "pilot")
    auth = {"Authorization": f"Bearer {pilot['key']}"}
    assert (await client.get(url, headers=auth)).status_code == 200
    assert (await client.get(url, headers=auth)).status_code == 200
    assert (await client.delete(f"/v1/keys/{pilot['id']}")).status_code == 204
    assert cached_read(_runtime(client.app), _scope(url, pilot["key"])) is None
    assert_problem(await client.get(url, headers=auth), 401, "unauthenticated")


async def test_a_key_of_another_realm_gets_the_routed_404(
    api: Api, client: AsyncTestClient[Litestar]
) -> None:
    await api.create(title="Root", body="b", owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    assert (await client.get(url)).status_code == 200  # cached
    elsewhere = await _agent_key(api, "pilot", realm="some-other-realm")
    auth = {"Authorization": f"Bearer {elsewhere['key']}"}
    assert_problem(await client.get(url, headers=auth), 404, "not-found")
    assert cached_read(_runtime(client.app), _scope(url, elsewhere["key"])) is None


async def test_a_long_poll_ends_the_same_either_way(api: Api) -> None:
    await api.create(title="Root", body="b", owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    first = await api.client.get(url)
    tag = {"If-None-Match": first.headers["etag"]}
    assert cached_read(_runtime(api.client.app), _scope(url, ADMIN_KEY, query=b"wait=1"))
    fast = await api.client.get(url, params={"wait": 1}, headers=tag)
    routed = await api.client.get(url, params={"wait": 1, "via": "router"}, headers=tag)
    assert fast.status_code == 304
    assert _comparable(fast) == _comparable(routed)


async def test_the_same_request_id_gives_the_same_headers(api: Api) -> None:
    """DESIGN §12: the request id applies to the fast path too, header for header."""
    await api.create(title="Root", body="b", owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    given = {"X-Request-Id": "trace-7f3a.b:1"}
    routed = await api.client.get(url, params=ROUTED, headers=given)
    assert cached_read(_runtime(api.client.app), _scope(url, ADMIN_KEY)) is not None
    fast = await api.client.get(url, headers=given)
    assert fast.headers["x-request-id"] == "trace-7f3a.b:1"
    assert (fast.status_code, dict(fast.headers), fast.content) == (
        routed.status_code,
        dict(routed.headers),
        routed.content,
    )
    for insane in ("", "a b", "x" * 65, "é", "id\r\nX-Evil: 1"):
        answer = await api.client.get(url, headers={b"x-request-id": insane.encode("utf-8")})
        assert answer.headers["x-request-id"] != insane
        assert re.fullmatch(r"[0-9a-f]{16}", answer.headers["x-request-id"])


async def test_fast_and_routed_reads_are_counted_under_one_route(api: Api) -> None:
    await api.create(title="Root", body="b", owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    metrics = _runtime(api.client.app).metrics
    labels = {"method": "GET", "route": fastpath.ROUTE, "status": "200"}

    def answered() -> float:
        metrics.flush()  # what a scrape does first: tallied counts join the metrics
        value = metrics.registry.get_sample_value("charter_http_requests_total", labels)
        return value or 0.0

    before = answered()
    await api.client.get(url, params=ROUTED)
    assert answered() == before + 1  # the routed handler's template is fastpath.ROUTE
    assert cached_read(_runtime(api.client.app), _scope(url, ADMIN_KEY)) is not None
    await api.client.get(url)
    assert answered() == before + 2
    hits = metrics.registry.get_sample_value(
        "charter_cache_lookups_total", {"tier": "local", "result": "hit"}
    )
    assert hits is not None
    assert hits >= 1
    local = {"source": "local"}
    reads = metrics.registry.get_sample_value("charter_prompt_reads_total", local)
    await api.client.get(url)
    metrics.flush()
    assert (
        metrics.registry.get_sample_value("charter_prompt_reads_total", local) == (reads or 0) + 1
    )
    after = metrics.registry.get_sample_value(
        "charter_cache_lookups_total", {"tier": "local", "result": "hit"}
    )
    assert after == hits + 1
