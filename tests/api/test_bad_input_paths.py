"""Malformed or unknown realm slugs and directive ids in the path, on every route."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest
from httpx import Response

from tests.support.api import Api, new_realm_id
from tests.support.refusals import (
    JSON,
    MARKER,
    UNSET,
    assert_problem,
    realm_state,
    send,
    valid_create,
)

# --- realm and directive ids in the path ------------------------------------------------------

BAD_REALM_SLUGS = [
    pytest.param("Upper", id="upper-case"),
    pytest.param("a_b", id="underscore"),
    pytest.param("-a", id="leading-dash"),
    pytest.param("a" * 64, id="64-chars"),
    pytest.param("r%C3%A9alm", id="non-ascii"),
    pytest.param("realm%0A", id="trailing-newline"),
    pytest.param("a.b", id="dot"),
    pytest.param("a%20b", id="space"),
]


def _realm_routes(node_id: str) -> list[tuple[str, str, str, Any]]:
    """(name, method, path under /v1/realms/{r}, body) for every realm-scoped route."""
    write = {"title": f"{MARKER} t", "expected_revision": 1}
    inject = {"messages": [{"role": "user", "content": f"{MARKER} hello"}]}
    return [
        ("show-realm", "GET", "", UNSET),
        ("forest", "GET", "/tree", UNSET),
        ("list", "GET", "/directives", UNSET),
        ("create", "POST", "/directives", valid_create()),
        ("show", "GET", f"/directives/{node_id}", UNSET),
        ("patch", "PATCH", f"/directives/{node_id}", write),
        ("delete", "DELETE", f"/directives/{node_id}", {"expected_revision": 1}),
        (
            "rollback",
            "POST",
            f"/directives/{node_id}/rollback",
            {"version": 1, "expected_revision": 1},
        ),
        ("versions", "GET", f"/directives/{node_id}/versions", UNSET),
        ("version", "GET", f"/directives/{node_id}/versions/1", UNSET),
        ("diff", "GET", f"/directives/{node_id}/diff?from=1&to=2", UNSET),
        ("history", "GET", f"/directives/{node_id}/history", UNSET),
        ("ancestry", "GET", f"/directives/{node_id}/ancestry", UNSET),
        ("subtree", "GET", f"/directives/{node_id}/tree", UNSET),
        ("events", "GET", "/events", UNSET),
        ("agents", "GET", "/agents", UNSET),
        ("prompt", "GET", "/agents/lead/prompt", UNSET),
        ("inject", "POST", "/agents/lead/inject", inject),
        ("composition", "GET", "/compositions/cmp_" + "0" * 64, UNSET),
    ]


def _realm_request(api: Api, realm: str, method: str, path: str, body: Any) -> Awaitable[Response]:
    url = f"/v1/realms/{realm}{path}"
    if body is UNSET:
        return api.client.request(method, url)
    return api.client.request(method, url, content=json.dumps(body).encode(), headers=JSON)


@pytest.mark.parametrize("slug", BAD_REALM_SLUGS)
async def test_every_realm_route_refuses_a_bad_realm_slug(
    api: Api, root: dict[str, Any], slug: str
) -> None:
    for name, method, path, body in _realm_routes(root["id"]):
        before = await realm_state(api)
        response = await _realm_request(api, slug, method, path, body)
        assert response.status_code == 400, (name, response.text)
        assert_problem(response, 400, "invalid-request")
        assert await realm_state(api) == before


async def test_every_realm_route_answers_404_for_a_realm_that_does_not_exist(
    api: Api, root: dict[str, Any]
) -> None:
    missing = new_realm_id()
    for name, method, path, body in _realm_routes(root["id"]):
        response = await _realm_request(api, missing, method, path, body)
        assert response.status_code == 404, (name, response.text)
        assert_problem(response, 404, "not-found")
    assert (await api.client.get(f"/v1/realms/{missing}")).status_code == 404


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/BAD/events/stream", {}, id="events-bad-slug"),
        pytest.param("/{r}/events/stream?after=-1", {}, id="events-after-negative"),
        pytest.param(f"/{{r}}/events/stream?after={2**63}", {}, id="events-after-huge"),
        pytest.param("/{r}/events/stream", {"Last-Event-ID": "x"}, id="last-event-id-word"),
        pytest.param("/{r}/events/stream", {"Last-Event-ID": "-1"}, id="last-event-id-negative"),
        pytest.param("/{r}/events/stream", {"Last-Event-ID": "9" * 19}, id="last-event-id-huge"),
        pytest.param(
            "/{r}/events/stream", {"Last-Event-ID": b"\xb2"}, id="last-event-id-superscript"
        ),
        pytest.param("/BAD/agents/lead/prompt/stream", {}, id="prompt-bad-slug"),
        pytest.param("/{r}/agents/a%20b/prompt/stream", {}, id="prompt-bad-agent"),
    ],
)
async def test_streams_refuse_bad_input_before_they_start(
    api: Api, root: dict[str, Any], path: str, headers: dict[str, str | bytes]
) -> None:
    # A stream that started would never end: the bound turns that into a failure, not a hang.
    # As bytes on the wire: a str value is ASCII here, a bytes value goes as it is.
    raw = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in headers.items()]
    request = api.client.get("/v1/realms" + path.format(r=api.realm), headers=raw)
    response = await asyncio.wait_for(request, timeout=10)
    assert_problem(response, 400, "invalid-request")


def _directive_routes(api: Api, directive_id: str) -> Iterator[tuple[str, Awaitable[Response]]]:
    """(name, request) for every route under one directive; each request is sent when awaited."""
    cas = {"If-Match": '"1"'}
    routes: list[tuple[str, str, str, Any, dict[str, str] | None]] = [
        ("show", "GET", "", UNSET, None),
        ("patch", "PATCH", "", {"title": f"{MARKER} t"}, cas),
        ("delete", "DELETE", "", UNSET, cas),
        ("rollback", "POST", "/rollback", {"version": 1}, cas),
        ("versions", "GET", "/versions", UNSET, None),
        ("version", "GET", "/versions/1", UNSET, None),
        ("diff", "GET", "/diff?from=1&to=2", UNSET, None),
        ("history", "GET", "/history", UNSET, None),
        ("ancestry", "GET", "/ancestry", UNSET, None),
        ("subtree", "GET", "/tree", UNSET, None),
    ]
    for name, method, path, body, headers in routes:
        yield name, send(api, method, f"/{directive_id}{path}", body, headers)


PATH_BAD_IDS = [
    pytest.param("nope", id="word"),
    pytest.param("dir_", id="prefix-only"),
    pytest.param("dir_" + "u" * 26, id="not-crockford"),
    pytest.param("dir_" + "0" * 25, id="too-short"),
    pytest.param("DIR_" + "0" * 26, id="upper-prefix"),
    pytest.param("dir_" + "0" * 26 + "%0A", id="trailing-newline"),
    pytest.param("dir_" + "0" * 26 + "%00", id="nul"),
    pytest.param("dir_%20" + "0" * 25, id="space"),
]


@pytest.mark.parametrize("directive_id", PATH_BAD_IDS)
async def test_every_directive_route_refuses_a_malformed_id(
    api: Api, root: dict[str, Any], directive_id: str
) -> None:
    for name, request in _directive_routes(api, directive_id):
        before = await realm_state(api)
        response = await request
        assert response.status_code == 400, (name, response.text)
        assert_problem(response, 400, "invalid-request")
        assert await realm_state(api) == before


async def test_every_directive_route_refuses_an_upper_cased_real_id(
    api: Api, root: dict[str, Any]
) -> None:
    for name, request in _directive_routes(api, root["id"].upper()):
        response = await request
        assert response.status_code == 400, (name, response.text)
        assert_problem(response, 400, "invalid-request")


@pytest.mark.parametrize("which", ["missing", "foreign"])
async def test_every_directive_route_answers_404_for_an_id_not_in_the_realm(
    api: Api, root: dict[str, Any], foreign: dict[str, Any], which: str
) -> None:
    directive_id = "dir_" + "0" * 26 if which == "missing" else foreign["id"]
    for name, request in _directive_routes(api, directive_id):
        before = await realm_state(api)
        response = await request
        assert response.status_code == 404, (name, response.text)
        assert_problem(response, 404, "not-found")
        assert await realm_state(api) == before
