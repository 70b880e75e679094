"""The pre-routed directive PATCH (api/fastwrite.py): the routed handler's answer, byte for
byte and header for header (CORS on), or it declines and the router answers."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from charter.api import fastwrite
from charter.app import create_app
from charter.settings import Settings
from tests.support.api import ADMIN_KEY, Api, new_realm_id

ORIGIN = "http://127.0.0.1:5999"
# A query string the fast path declines and the handler ignores: always routed.
ROUTED = {"via": "router"}
MISSING = "dir_" + "0" * 26


@pytest.fixture(scope="module")
async def fast_api(settings: Settings) -> AsyncIterator[Api]:
    limited = dataclasses.replace(settings, cors_origins=(ORIGIN,), max_request_bytes=4096)
    app = create_app(limited, deliver_webhooks=False)
    async with AsyncTestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        client.headers["Origin"] = ORIGIN
        realm = new_realm_id()
        assert (await client.post("/v1/realms", json={"id": realm})).status_code == 201
        yield Api(client, realm)


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The statuses the fast path itself sent, in order."""
    sent: list[int] = []
    respond = fastwrite._respond

    async def counted(send: Any, status: int, *rest: Any) -> None:
        sent.append(status)
        await respond(send, status, *rest)

    monkeypatch.setattr(fastwrite, "_respond", counted)
    return sent


def _comparable(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers in order, body; the request id is checked, then left out."""
    headers = [(k.lower(), v) for k, v in response.headers.multi_items()]
    ids = [v for k, v in headers if k == "x-request-id"]
    assert len(ids) == 1, ids
    assert re.fullmatch(r"[0-9a-f]{16}", ids[0]), ids
    return response.status_code, [h for h in headers if h[0] != "x-request-id"], response.content


async def _both(
    api: Api, directive_id: str, answered: list[int], **kwargs: Any
) -> tuple[Any, Any, bool]:
    """The same PATCH routed, then fast; and whether the fast path answered it itself."""
    url = f"/v1/realms/{api.realm}/directives/{directive_id}"
    routed = await api.client.patch(url, params=ROUTED, **kwargs)
    before = len(answered)
    fast = await api.client.patch(url, **kwargs)
    return routed, fast, len(answered) > before


async def test_refusals_are_byte_identical_and_answered_fast(
    fast_api: Api, answered: list[int]
) -> None:
    node = await fast_api.create(title="T", body="b")
    now = f'"{node["revision"]}"'
    cases: list[tuple[int, dict[str, Any]]] = [
        (412, {"json": {"body": "x"}, "headers": {"If-Match": '"999"'}}),
        (412, {"json": {"body": "x"}, "headers": {"If-Match": now.join(("W/", ""))}}),
        (409, {"json": {"body": "x", "expected_revision": 999}}),
        (428, {"json": {"body": "x"}}),
        (400, {"json": {"body": "x"}, "headers": {"If-Match": '"٣"'.encode()}}),  # not ASCII digits
        (400, {"json": {"body": "x", "expected_revision": 5}, "headers": {"If-Match": '"4"'}}),
        (400, {"json": {"activate": False}, "headers": {"If-Match": now}}),
        (200, {"json": {"body": "b"}, "headers": {"If-Match": now}}),  # unchanged: no write
    ]
    for status, kwargs in cases:
        routed, fast, was_fast = await _both(fast_api, node["id"], answered, **kwargs)
        assert routed.status_code == status, (kwargs, routed.text)
        assert _comparable(fast) == _comparable(routed), kwargs
        assert was_fast, kwargs
    missing_routed, missing_fast, was_fast = await _both(
        fast_api, MISSING, answered, json={"body": "x"}, headers={"If-Match": '"1"'}
    )
    assert missing_routed.status_code == 404
    assert was_fast
    assert _comparable(missing_fast) == _comparable(missing_routed)
    assert (await fast_api.get(node["id"]))["revision"] == node["revision"]  # nothing written


async def test_what_it_declines_the_router_answers(fast_api: Api, answered: list[int]) -> None:
    node = await fast_api.create(title="T", body="b")
    now = {"If-Match": f'"{node["revision"]}"'}
    cases: list[tuple[int, dict[str, Any]]] = [
        (413, {"content": b'{"body": "' + b"x" * 5000 + b'"}', "headers": now}),
        (415, {"content": b'{"body": "x"}', "headers": {**now, "Content-Type": "text/plain"}}),
        (400, {"json": {"body": "x", "colour": "red"}, "headers": now}),  # unknown field
        (400, {"json": {"body": 3}, "headers": now}),  # wrong type
        (400, {"content": b'{"body": ', "headers": now}),  # not JSON
        (400, {"content": b"\xff\xfe", "headers": now}),  # not UTF-8
        (400, {"json": {"body": "x"}, "headers": {**now, "Idempotency-Key": "k" * 300}}),
    ]
    for status, kwargs in cases:
        if "content" in kwargs:
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs["headers"]}
        routed, fast, was_fast = await _both(fast_api, node["id"], answered, **kwargs)
        assert routed.status_code == status, (status, routed.text)
        assert _comparable(fast) == _comparable(routed), status
        assert not was_fast, status
    assert (await fast_api.get(node["id"]))["revision"] == node["revision"]


async def test_a_write_answers_as_the_routed_one_does(fast_api: Api, answered: list[int]) -> None:
    routed_node = await fast_api.create(title="T", body="before")
    fast_node = await fast_api.create(title="T", body="before")
    url = f"/v1/realms/{fast_api.realm}/directives/"
    patch: dict[str, Any] = {
        "json": {"body": "after", "message": "m"},
        "headers": {"If-Match": '"1"'},
    }
    routed = await fast_api.client.patch(url + routed_node["id"], params=ROUTED, **patch)
    before = len(answered)
    fast = await fast_api.client.patch(url + fast_node["id"], **patch)
    assert answered[before:] == [200]
    assert routed.status_code == fast.status_code == 200
    # Two directives: their ids and times differ, and nothing else.
    (_, routed_headers, routed_body), (_, fast_headers, fast_body) = (
        _comparable(routed),
        _comparable(fast),
    )
    assert fast_headers == routed_headers
    assert fast_body.replace(fast_node["id"].encode(), routed_node["id"].encode()).replace(
        fast.json()["updated_at"].encode(), routed.json()["updated_at"].encode()
    ).replace(fast.json()["created_at"].encode(), routed.json()["created_at"].encode()) == (
        routed_body
    )
    assert fast.headers["etag"] == '"2"'
    shown = await fast_api.get(fast_node["id"])
    assert shown["body"] == "after"
    assert shown["revision"] == 2
    events = [e for e in await fast_api.events() if e["directive_id"] == fast_node["id"]]
    assert [e["type"] for e in events][-1] == "directive.version_created"


async def test_fast_and_routed_patches_are_counted_under_one_route(
    fast_api: Api, answered: list[int]
) -> None:
    node = await fast_api.create(title="T", body="b")
    metrics = fast_api.client.app.state.runtime.metrics
    labels = {"method": "PATCH", "route": fastwrite.ROUTE, "status": "412"}

    def counted() -> float:
        metrics.flush()  # one process tallies in plain numbers until a scrape renders them
        value = metrics.registry.get_sample_value("charter_http_requests_total", labels)
        return value or 0.0

    before = counted()
    stale = {"json": {"body": "x"}, "headers": {"If-Match": '"99"'}}
    _, _, was_fast = await _both(fast_api, node["id"], answered, **stale)
    assert was_fast
    assert counted() == before + 2  # the routed handler's template is fastwrite.ROUTE
