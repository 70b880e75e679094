"""Regressions for what the OpenAPI checks and schemathesis (tests/fuzz) found, one test each.

1. The OpenAPI document and its pages answered 500: their routes declared no access, and
   the fallback meant for them compared router-relative paths with "/schema".
2. Stream heartbeats carried an empty `data:` line, so an EventSource saw an empty message
   event every heartbeat instead of a comment (and the events broke the documented schema).
3. OPTIONS answered an Allow header with only some of the path's methods (Litestar keeps the
   first registered route's methods): `OPTIONS /v1/realms` said `OPTIONS, POST`.
"""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.api import ADMIN_KEY, Api
from tests.support.streams import open_stream

HEARTBEAT = b": ping\r\n\r\n"


async def _without_key(client: AsyncTestClient[Litestar], method: str, path: str) -> httpx.Response:
    request = client.build_request(method, path)
    del request.headers["Authorization"]
    return await client.send(request)


@pytest.mark.parametrize("path", ["/schema/openapi.json", "/schema", "/schema/swagger"])
async def test_the_document_and_its_pages_are_served_without_a_key(
    client: AsyncTestClient[Litestar], path: str
) -> None:
    response = await _without_key(client, "GET", path)
    assert response.status_code == 200, response.text


async def _stream(client: AsyncTestClient[Litestar], url: str, count: int) -> list[bytes]:
    answer = await open_stream(client, url, {"Authorization": f"Bearer {ADMIN_KEY}"}, count)
    assert answer.status == 200
    return list(answer.chunks[:count])


async def test_event_stream_heartbeats_are_comments_without_data(api: Api) -> None:
    await api.create(title="T", body="B")
    # After the current revision there is nothing to send: the first thing out is a heartbeat.
    realm = (await api.client.get(f"/v1/realms/{api.realm}")).json()
    url = f"/v1/realms/{api.realm}/events/stream?after={realm['revision']}"
    [first] = await _stream(api.client, url, 1)
    assert first == HEARTBEAT


async def test_prompt_stream_heartbeats_are_comments_without_data(api: Api) -> None:
    await api.create(title="T", body="B", owner_agent_id="lead")
    prompt, heartbeat = await _stream(
        api.client, f"/v1/realms/{api.realm}/agents/lead/prompt/stream", 2
    )
    assert prompt.startswith(b"id: cmp_")
    assert b"\r\nevent: prompt\r\ndata: {" in prompt
    assert heartbeat == HEARTBEAT


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/realms", "GET, OPTIONS, POST"),
        ("/v1/keys", "GET, OPTIONS, POST"),
        ("/v1/realms/{r}/directives", "GET, OPTIONS, POST"),
        ("/v1/realms/{r}/directives/dir_{z}", "DELETE, GET, OPTIONS, PATCH"),
        ("/v1/realms/{r}/directives/dir_{z}/rollback", "OPTIONS, POST"),
        ("/healthz", "GET, OPTIONS"),
    ],
)
async def test_options_lists_every_method_of_the_path(
    client: AsyncTestClient[Litestar], realm: str, path: str, allow: str
) -> None:
    url = path.format(r=realm, z="0" * 26)
    response = await _without_key(client, "OPTIONS", url)
    assert response.status_code == 204
    assert response.headers["allow"] == allow


async def test_options_agrees_with_the_document(client: AsyncTestClient[Litestar]) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    for path, item in document["paths"].items():
        methods = {m.upper() for m in item if m in {"get", "post", "patch", "delete", "put"}}
        url = path.format(
            realm_id="r",
            directive_id="dir_" + "0" * 26,
            agent_id="a",
            composition_id="cmp_" + "0" * 64,
            key_id="key_" + "0" * 26,
            webhook_id="whk_" + "0" * 26,
            delivery_id="dlv_" + "0" * 26,
            claim_id="clm_" + "0" * 26,
            schedule_id="sch_" + "0" * 26,
            number="1",
        )
        response = await _without_key(client, "OPTIONS", url)
        assert response.status_code == 204, path
        assert response.headers["allow"] == ", ".join(sorted(methods | {"OPTIONS"})), path
