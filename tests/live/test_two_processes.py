"""Two real `charter serve` processes on one PostgreSQL and one Redis see each other's changes.

A writes, B reads: B's local tier, long-polls and streams must all learn of A's commit through
Redis (the invalidation channel and the tombstones), never by waiting for a timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.live import Event, LiveApi, metrics, sse_events
from tests.support.servers import CharterServer

pytestmark = pytest.mark.timeout(60)

READ_AFTER_WRITE_SECONDS = 1.0
LOCAL_READS = 'charter_prompt_reads_total{source="local"}'


@pytest.fixture
async def pair(
    two_servers: tuple[CharterServer, CharterServer], realm_id: str
) -> AsyncIterator[tuple[LiveApi, LiveApi]]:
    """The same fresh realm through A (the writer) and B (the reader)."""
    server_a, server_b = two_servers
    async with server_a.http() as http_a, server_b.http() as http_b:
        a = LiveApi(http_a, realm_id)
        await a.create_realm()
        yield a, a.on(http_b)


async def next_event(events: AsyncIterator[Event], seconds: float) -> Event:
    return await asyncio.wait_for(anext(events), seconds)


async def watchers(api: LiveApi) -> float:
    samples = await metrics(api.http)
    return sum(v for name, v in samples.items() if name.startswith("charter_watchers{"))


async def until_watchers(api: LiveApi, count: float, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while (now := await watchers(api)) != count:
        assert time.monotonic() < deadline, f"{now} watchers on the server, not {count}"
        await asyncio.sleep(0.02)


def only_data(event: Event) -> dict[str, Any]:
    """SSE carries one JSON object per event on one `data:` line."""
    assert len(event.data) == 1, event
    document: dict[str, Any] = json.loads(event.data[0])
    return document


async def test_b_serves_a_write_through_a_within_a_second(pair: tuple[LiveApi, LiveApi]) -> None:
    a, b = pair
    root = await a.create(title="Root", body="before", owner_agent_id="x")
    before = await b.prompt("x")
    assert before["text"] == "# Root\n\nbefore"
    # Warm on B: the old prompt now sits in B's own memory, which only A's message can clear.
    local_hits = (await metrics(b.http)).get(LOCAL_READS, 0)
    assert await b.prompt("x") == before
    assert (await metrics(b.http))[LOCAL_READS] == local_hits + 1

    await a.patch(root, body="after")
    deadline = time.monotonic() + READ_AFTER_WRITE_SECONDS
    while time.monotonic() < deadline:
        seen = await b.prompt("x")
        if seen["composition_id"] != before["composition_id"]:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail(f"B still serves the old prompt {READ_AFTER_WRITE_SECONDS} s after the write")
    assert seen["text"] == "# Root\n\nafter"
    assert seen == await a.prompt("x")


async def test_a_long_poll_on_b_wakes_on_a_write_through_a(pair: tuple[LiveApi, LiveApi]) -> None:
    a, b = pair
    root = await a.create(title="Root", body="before", owner_agent_id="x")
    before = await b.prompt("x")
    watching = await watchers(b)

    poll = asyncio.create_task(
        b.http.get(
            f"{b.base}/agents/x/prompt",
            params={"wait": 10},
            headers={"If-None-Match": f'"{before["composition_id"]}"'},
            timeout=15.0,
        )
    )
    try:
        await until_watchers(b, watching + 1)
        assert not poll.done(), "the long-poll answered before any change"
        await a.patch(root, body="after")
        written = time.monotonic()
        response = await asyncio.wait_for(poll, 12.0)
        woke_after = time.monotonic() - written
    finally:
        poll.cancel()
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["text"] == "# Root\n\nafter"
    assert response.headers["etag"] == f'"{document["composition_id"]}"'
    assert document["composition_id"] != before["composition_id"]
    assert woke_after < READ_AFTER_WRITE_SECONDS, f"woke {woke_after:.2f} s after the write"


async def test_a_prompt_stream_on_b_follows_writes_through_a(
    pair: tuple[LiveApi, LiveApi],
) -> None:
    a, b = pair
    root = await a.create(title="Root", body="before", owner_agent_id="x")
    before = await a.prompt("x")
    watching = await watchers(b)

    async with b.http.stream("GET", f"{b.base}/agents/x/prompt/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.aiter_lines())
        first = await next_event(events, 5.0)
        assert first.event == "prompt"
        assert first.id == before["composition_id"]
        assert only_data(first) == before

        await a.patch(root, body="after")
        second = await next_event(events, 3.0)
        assert second.event == "prompt"
        document = only_data(second)
        assert document["text"] == "# Root\n\nafter"
        assert second.id == document["composition_id"] != before["composition_id"]
        await events.aclose()
    # A clean end when the client leaves: B lets go of the watch (no waiting for a heartbeat).
    await until_watchers(b, watching)


async def test_the_event_stream_on_b_replays_then_follows_a(pair: tuple[LiveApi, LiveApi]) -> None:
    a, b = pair
    root = await a.create(title="Root", body="one", owner_agent_id="x")
    root = await a.patch(root, body="two")
    watching = await watchers(b)

    async with b.http.stream(
        "GET", f"{b.base}/events/stream", headers={"Last-Event-ID": "0"}
    ) as response:
        assert response.status_code == 200
        events = sse_events(response.aiter_lines())
        replayed = [await next_event(events, 5.0) for _ in range(2)]
        assert [(e.id, e.event) for e in replayed] == [
            ("1", "directive.created"),
            ("2", "directive.version_created"),
        ]
        for event in replayed:
            document = only_data(event)
            assert str(document["seq"]) == event.id
            assert document["type"] == event.event
            assert document["directive_id"] == root["id"]

        await a.patch(root, status="paused")
        live = await next_event(events, 3.0)
        assert (live.id, live.event) == ("3", "directive.status_changed")
        document = only_data(live)
        assert document["seq"] == 3
        assert document["affected_agents"] == ["x"]
        await events.aclose()
    await until_watchers(b, watching)


async def test_a_long_poll_on_the_writer_wakes_routed_or_not(
    pair: tuple[LiveApi, LiveApi],
) -> None:
    """A long poll for a cached prompt is answered before routing (api/fastpath.py); with a
    query parameter that path does not read, by the routed handler. Both wake on a change."""
    a, _ = pair
    root = await a.create(title="Root", body="v0", owner_agent_id="x")
    for n, extra in enumerate(({}, {"via": "router"}), start=1):
        before = await a.prompt("x")
        watching = await watchers(a)
        poll = asyncio.create_task(
            a.http.get(
                f"{a.base}/agents/x/prompt",
                params={"wait": 10, **extra},
                headers={"If-None-Match": f'"{before["composition_id"]}"'},
                timeout=15.0,
            )
        )
        try:
            await until_watchers(a, watching + 1)
            assert not poll.done(), "the long-poll answered before any change"
            root = await a.patch(root, body=f"v{n}")
            response = await asyncio.wait_for(poll, READ_AFTER_WRITE_SECONDS)
        finally:
            poll.cancel()
        assert response.status_code == 200, response.text
        assert response.json()["text"] == f"# Root\n\nv{n}"


async def test_an_error_while_long_polling_gets_the_routed_problem(
    pair: tuple[LiveApi, LiveApi],
) -> None:
    a, _ = pair
    root = await a.create(title="Root", body="b", owner_agent_id="x")
    before = await a.prompt("x")
    watching = await watchers(a)
    url = f"{a.base}/agents/x/prompt"
    tag = {"If-None-Match": f'"{before["composition_id"]}"'}
    poll = asyncio.create_task(a.http.get(url, params={"wait": 10}, headers=tag, timeout=15.0))
    try:
        await until_watchers(a, watching + 1)
        await a.patch(root, owner_agent_id="y")  # x owns nothing now: its prompt is gone
        response = await asyncio.wait_for(poll, READ_AFTER_WRITE_SECONDS)
    finally:
        poll.cancel()
    routed = await a.http.get(url, params={"via": "router"})
    assert routed.status_code >= 400
    assert response.status_code == routed.status_code
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == routed.json()["code"]
