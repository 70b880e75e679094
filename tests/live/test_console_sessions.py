"""Console sessions across two real server processes (one PostgreSQL, one Redis): a sign-out
or a key's revocation on A ends the session on B at the next request, and ends B's stream
and long poll that the session's cookie opened, at once (DESIGN §11, issue 16)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.live import LiveApi
from tests.support.servers import CharterServer

pytestmark = pytest.mark.timeout(60)
END_SECONDS = 5.0  # generous: the machine is shared; the bus makes it immediate


async def _sign_in(server: CharterServer, secret: str) -> tuple[httpx.AsyncClient, str]:
    """A cookie-keeping client signed in on `server`, and the session's CSRF token."""
    browser = httpx.AsyncClient(base_url=server.url, timeout=10.0)
    answer = await browser.post("/console/sign-in", data={"key": secret})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/realms"
    page = await browser.get("/console/realms")
    assert page.status_code == 200
    assert secret not in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return browser, token.group(1)


async def _lines(response: httpx.Response) -> AsyncIterator[str]:
    async for line in response.aiter_lines():
        yield line


async def _stream_ends(browser: httpx.AsyncClient, url: str, end: asyncio.Event) -> list[str]:
    """Follow the stream with the cookie until the server ends it; the lines it sent."""
    seen: list[str] = []
    async with browser.stream("GET", url) as response:
        assert response.status_code == 200
        async for line in _lines(response):
            seen.append(line)
            if line.startswith("event: prompt"):
                end.set()
    return seen


async def _key(server: CharterServer, realm: str) -> dict[str, str]:
    async with server.http() as http:
        body = {"role": "operator", "realms": [realm], "name": "session test"}
        response = await http.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    return created


@pytest.mark.parametrize("ending", ["sign-out", "revocation"])
async def test_an_ending_on_one_process_ends_the_session_and_stream_on_another(
    two_servers: tuple[CharterServer, CharterServer], realm_id: str, ending: str
) -> None:
    a, b = two_servers
    async with a.http() as http:
        api = LiveApi(http, realm_id)
        await api.create_realm()
        await api.create(title="Root", body="Body", owner_agent_id="pilot")
    key = await _key(a, realm_id)
    on_a, token = await _sign_in(a, key["key"])
    cookie = on_a.cookies.get("charter_session")
    assert cookie is not None
    on_b = httpx.AsyncClient(base_url=b.url, timeout=30.0, cookies={"charter_session": cookie})
    try:
        assert (await on_b.get("/console/realms")).status_code == 200  # the same session on B
        opened = asyncio.Event()
        url = f"/v1/realms/{realm_id}/agents/pilot/prompt/stream"
        stream = asyncio.create_task(_stream_ends(on_b, url, opened))
        await asyncio.wait_for(opened.wait(), END_SECONDS)
        first = await on_b.get(url.removesuffix("/stream"))
        assert first.status_code == 200
        poll = asyncio.create_task(
            on_b.get(
                url.removesuffix("/stream") + "?wait=30",
                headers={"If-None-Match": first.headers["etag"]},
            )
        )
        await asyncio.sleep(0.3)  # the long poll is waiting on B
        assert not poll.done()
        started = time.monotonic()
        if ending == "sign-out":
            answer = await on_a.post("/console/sign-out", data={"csrf": token})
            assert answer.status_code == 303
        else:
            async with a.http() as http:
                assert (await http.delete(f"/v1/keys/{key['id']}")).status_code == 204
        seen = await asyncio.wait_for(stream, END_SECONDS)
        polled = await asyncio.wait_for(poll, END_SECONDS)
        assert time.monotonic() - started < END_SECONDS
        # Each says why: the session ended, or the key it stood for was revoked.
        assert (": session ended" if ending == "sign-out" else ": key revoked") in seen
        assert polled.status_code == 401
        assert polled.json()["code"] == "unauthenticated"
        why = "session ended" if ending == "sign-out" else "key was revoked"
        assert why in polled.json()["detail"]
        page = await on_b.get("/console/realms")
        assert page.status_code == 303
        assert page.headers["location"] == "/console"
        assert (await on_b.get(url)).status_code == 401
    finally:
        await on_a.aclose()
        await on_b.aclose()


async def test_a_sign_out_needs_the_csrf_token(
    two_servers: tuple[CharterServer, CharterServer], realm_id: str
) -> None:
    a, _ = two_servers
    async with a.http() as http:
        await LiveApi(http, realm_id).create_realm()
    key = await _key(a, realm_id)
    browser, token = await _sign_in(a, key["key"])
    try:
        for forged in ({}, {"csrf": token[::-1]}):
            assert (await browser.post("/console/sign-out", data=forged)).status_code == 403
        assert (await browser.get("/console/realms")).status_code == 200  # still signed in
        answer = await browser.post(
            "/console/sign-out", data={"csrf": token}, headers={"Origin": "http://evil.test"}
        )
        assert answer.status_code == 403
        assert (await browser.get("/console/realms")).status_code == 200
    finally:
        await browser.aclose()
