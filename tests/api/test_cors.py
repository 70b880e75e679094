"""CORS (CHARTER_CORS_ORIGINS) and the security headers, on every answer: routed, fast path,
refused at the edge, and preflights (DESIGN §11, §12). Off by default."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from charter.api import cors
from charter.api.fastpath import cached_read
from charter.app import create_app
from charter.settings import Settings
from tests.support.api import ADMIN_KEY, Api, new_realm_id

ALLOWED = "http://127.0.0.1:5999"
OTHER = "http://127.0.0.1:6001"
SECURITY = {name.decode(): value.decode() for name, value in cors.SECURITY_HEADERS}


@pytest.fixture(scope="module")
async def cors_api(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(dataclasses.replace(settings, cors_origins=(ALLOWED,)))
    async with AsyncTestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        realm = new_realm_id()
        assert (await client.post("/v1/realms", json={"id": realm})).status_code == 201
        yield Api(client, realm)


def _headers(response: Any) -> dict[str, str]:
    headers = {k.lower(): v for k, v in response.headers.items()}
    headers.pop("x-request-id")
    return headers


async def test_a_preflight_from_a_named_origin_is_answered(cors_api: Api) -> None:
    url = f"/v1/realms/{cors_api.realm}/directives"
    asking = {
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "if-match",
    }
    answer = await cors_api.client.options(url, headers={"Origin": ALLOWED, **asking})
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert "PATCH" in answer.headers["access-control-allow-methods"]
    assert "If-Match" in answer.headers["access-control-allow-headers"]
    refused = await cors_api.client.options(url, headers={"Origin": OTHER, **asking})
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-methods" not in refused.headers


async def test_fast_and_routed_answers_carry_the_same_headers(cors_api: Api) -> None:
    await cors_api.create(title="Root", body="b", owner_agent_id="pilot")
    url = f"/v1/realms/{cors_api.realm}/agents/pilot/prompt"
    runtime = cors_api.client.app.state.runtime
    for origin in (ALLOWED, OTHER):
        routed = await cors_api.client.get(
            url, params={"via": "router"}, headers={"Origin": origin}
        )
        scope: Any = {
            "type": "http",
            "method": "GET",
            "path": url,
            "raw_path": url.encode(),
            "query_string": b"",
            "headers": [
                (b"authorization", f"Bearer {ADMIN_KEY}".encode()),
                (b"origin", origin.encode()),
            ],
        }
        assert cached_read(runtime, scope) is not None  # the next one is answered at once
        fast = await cors_api.client.get(url, headers={"Origin": origin})
        assert routed.status_code == fast.status_code == 200
        assert _headers(fast) == _headers(routed)
        assert fast.content == routed.content
        for name, value in SECURITY.items():
            assert fast.headers[name] == value
        allowed = fast.headers.get("access-control-allow-origin")
        assert allowed == (ALLOWED if origin == ALLOWED else None)
        assert fast.headers["vary"] == "Origin"
    exposed = fast.headers.get("access-control-expose-headers") or ""
    routed = await cors_api.client.get(url, headers={"Origin": ALLOWED})
    assert "ETag" in routed.headers["access-control-expose-headers"], exposed


async def test_refusals_at_the_edge_carry_them_too(cors_api: Api) -> None:
    url = f"/v1/realms/{cors_api.realm}/directives"
    answer = await cors_api.client.post(
        url, content=b"<x/>", headers={"Origin": ALLOWED, "Content-Type": "text/xml"}
    )
    assert answer.status_code == 415
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert answer.headers["x-content-type-options"] == "nosniff"
    unauthenticated = await cors_api.client.get(
        url, headers={"Origin": ALLOWED, "Authorization": "Bearer nope"}
    )
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["access-control-allow-origin"] == ALLOWED


async def test_console_pages_never_carry_cors(cors_api: Api) -> None:
    answer = await cors_api.client.get("/console", headers={"Origin": ALLOWED})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


async def test_cors_is_off_by_default(api: Api) -> None:
    await api.create(title="Root", body="b", owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    for params in ({}, {"via": "router"}):
        answer = await api.client.get(url, params=params, headers={"Origin": ALLOWED})
        assert answer.status_code == 200
        assert "access-control-allow-origin" not in answer.headers
        assert "vary" not in answer.headers
        assert answer.headers["x-content-type-options"] == "nosniff"
    preflight = await api.client.options(
        url, headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize(
    "value", ["*", "http://a.example/path", "ftp://a.example", "http://a.example:99999999"]
)
def test_a_bad_origin_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValueError, match="CHARTER_CORS_ORIGINS"):
        Settings.from_env({"CHARTER_CORS_ORIGINS": f"http://ok.example, {value}"})


def test_origins_are_read_from_the_environment() -> None:
    env = {"CHARTER_CORS_ORIGINS": f"{ALLOWED}, https://ops.example.com"}
    assert Settings.from_env(env).cors_origins == (ALLOWED, "https://ops.example.com")
    assert Settings.from_env({}).cors_origins == ()
