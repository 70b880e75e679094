"""Real `charter serve` processes: a key revoked through one process loses its streams and
long polls on another within a second (through Redis), and SIGTERM ends every stream with a
`retry:` hint and stops the process within five seconds."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.live import LiveApi, metrics
from tests.support.servers import CharterServer, StartServer

pytestmark = pytest.mark.timeout(90)

REVOKED_WITHIN_SECONDS = 1.0
STOPPED_WITHIN_SECONDS = 5.0


@dataclass
class Held:
    """A request held open in a task: what came back, and when it ended (monotonic)."""

    status: int | None = None
    body: bytearray = field(default_factory=bytearray)
    ended_at: float | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = None

    async def until(self, marker: bytes, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while marker not in self.body:
            assert self.ended_at is None, f"ended before {marker!r}: {bytes(self.body)!r}"
            assert time.monotonic() < deadline, f"no {marker!r} in {bytes(self.body)[-300:]!r}"
            await asyncio.sleep(0.01)


def hold(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Held:
    held = Held()

    async def run() -> None:
        try:
            async with http.stream("GET", url, headers=headers, timeout=70.0) as response:
                held.status = response.status_code
                async for chunk in response.aiter_raw():
                    held.body += chunk
        except httpx.HTTPError as exc:
            held.error = type(exc).__name__
        finally:
            held.ended_at = time.monotonic()

    held.task = asyncio.create_task(run())
    return held


async def _until_watchers(http: httpx.AsyncClient, count: float, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while (now := _open(await metrics(http))) != count:
        assert time.monotonic() < deadline, f"{now} watchers, not {count}"
        await asyncio.sleep(0.02)


async def _key(api: LiveApi, role: str, **fields: Any) -> dict[str, str]:
    response = await api.http.post("/v1/keys", json={"role": role, "realms": [api.realm], **fields})
    assert response.status_code == 201, response.text
    return {"id": response.json()["id"], "Authorization": f"Bearer {response.json()['key']}"}


def _auth(key: dict[str, str]) -> dict[str, str]:
    return {"Authorization": key["Authorization"]}


@pytest.fixture
async def pair(
    two_servers: tuple[CharterServer, CharterServer], realm_id: str
) -> AsyncIterator[tuple[LiveApi, LiveApi]]:
    a, b = two_servers
    async with a.http() as http_a, b.http() as http_b:
        api = LiveApi(http_a, realm_id)
        await api.create_realm()
        yield api, api.on(http_b)


async def test_a_key_revoked_through_a_loses_its_streams_and_polls_on_b(
    pair: tuple[LiveApi, LiveApi],
) -> None:
    a, b = pair
    root = await a.create(title="Root", body="before", owner_agent_id="x")
    agent = await _key(a, "agent", agent_id="x")
    reader = await _key(a, "reader")
    prompt_url = f"{b.base}/agents/x/prompt"
    first = await b.http.get(prompt_url, headers=_auth(agent))  # B caches it, knows the key
    assert first.status_code == 200
    polling = {**_auth(agent), "If-None-Match": first.headers["etag"]}
    watching = _open(await metrics(b.http))
    held = [
        hold(b.http, f"{prompt_url}/stream", _auth(agent)),
        hold(b.http, f"{b.base}/events/stream?after=0", _auth(reader)),
        hold(b.http, f"{prompt_url}?wait=30", polling),  # answered before routing
        hold(b.http, f"{prompt_url}?wait=30&via=router", polling),  # routed
    ]
    try:
        await held[0].until(b"event: prompt")
        await held[1].until(b"event: directive.created")
        await _until_watchers(b.http, watching + 4)
        for key in (agent, reader):
            response = await a.http.delete(f"/v1/keys/{key['id']}")
            assert response.status_code == 204, response.text
        revoked_at = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*(h.task for h in held if h.task)), REVOKED_WITHIN_SECONDS + 2
        )
        await a.patch(root, body="after the revocation")
    finally:
        for h in held:
            if h.task is not None:
                h.task.cancel()
    for h in held:
        assert h.error is None, h
        assert h.ended_at is not None
        assert h.ended_at - revoked_at < REVOKED_WITHIN_SECONDS, h
    assert [h.status for h in held] == [200, 200, 401, 401]
    assert held[0].body.endswith(b": key revoked\r\n\r\n")
    assert held[1].body.endswith(b": key revoked\r\n\r\n")
    assert b"after the revocation" not in held[0].body


async def test_sigterm_ends_every_stream_with_a_retry_hint_and_exits(
    start_server: StartServer, realm_id: str
) -> None:
    server = await start_server()
    async with server.http() as http:
        api = LiveApi(http, realm_id)
        await api.create_realm()
        await api.create(title="Root", body="b", owner_agent_id="x")
        prompt = await api.prompt("x")
        url = f"{api.base}/agents/x/prompt"
        polling = {"If-None-Match": f'"{prompt["composition_id"]}"'}
        streams = [hold(http, f"{url}/stream", {}) for _ in range(3)]
        streams += [hold(http, f"{api.base}/events/stream?after=0", {}) for _ in range(3)]
        polls = [
            hold(http, f"{url}?wait=30", polling),
            hold(http, f"{url}?wait=30&via=router", polling),
        ]
        try:
            for stream in streams[:3]:
                await stream.until(b"event: prompt")
            for stream in streams[3:]:
                await stream.until(b"event: directive.created")
            await _until_watchers(http, len(streams) + len(polls))
            signalled = time.monotonic()
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)  # to granian's main process
            code = await asyncio.to_thread(server.process.wait, STOPPED_WITHIN_SECONDS + 5)
            gone = time.monotonic() - signalled
            await asyncio.wait_for(asyncio.gather(*(h.task for h in streams + polls if h.task)), 5)
        finally:
            for h in streams + polls:
                if h.task is not None:
                    h.task.cancel()
    assert gone < STOPPED_WITHIN_SECONDS, f"{gone:.1f} s to exit"
    assert code == 0
    for stream in streams:
        assert stream.error is None, stream
        assert stream.status == 200
        assert stream.body.endswith(b"retry: 1000\r\n\r\n"), bytes(stream.body[-200:])
        assert stream.ended_at is not None
        assert stream.ended_at - signalled < gone + 0.5
    for poll in polls:
        assert poll.error is None, poll
        assert poll.status == 304  # answered at once: nothing changed, ask again elsewhere
    log = server.log.read_text(errors="replace")
    assert "refused to gracefully stop" not in log  # not the kill after the timeout


def _open(samples: dict[str, float]) -> int:
    """Open streams and long polls, all kinds summed."""
    return int(sum(v for name, v in samples.items() if name.startswith("charter_watchers{")))
