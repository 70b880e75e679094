"""`events/stream`: every stream of a realm is fed by one read per change, and each still
gets exactly its own events (filters, cursor, Last-Event-ID), once each, in order."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

from litestar import Litestar
from sqlalchemy import event

from charter.runtime import Runtime
from tests.support.api import ADMIN_KEY, Api
from tests.support.checks import assert_problem
from tests.support.live import open_watchers
from tests.support.streams import HeldStream, held_stream

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
STREAMS = 30


def frames(stream: HeldStream) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, event, data) of every event the stream carried; comments skipped."""
    out = []
    for block in stream.body.split(b"\r\n\r\n"):
        fields = dict(
            line.split(b": ", 1) for line in block.split(b"\r\n") if line and line[:1] != b":"
        )
        if b"data" in fields:
            data = json.loads(fields[b"data"])
            assert str(data["seq"]).encode() == fields[b"id"]
            assert data["type"].encode() == fields[b"event"]
            out.append((data["seq"], data["type"], data))
    return out


def seqs(stream: HeldStream) -> list[int]:
    return [seq for seq, _, _ in frames(stream)]


@contextmanager
def feed_reads(app: Litestar) -> Iterator[list[str]]:
    """Every statement the app runs that reads the feed (whole event rows), while open."""
    runtime: Runtime = app.state.runtime
    engine = runtime.db.engine.sync_engine
    seen: list[str] = []
    whole_rows = re.compile(r"\bevents\.payload\b.*\bFROM events\b", re.DOTALL)

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if whole_rows.search(statement):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def _until(done: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def _watchers(api: Api) -> int:
    return open_watchers((await api.client.get("/metrics")).text)


async def test_one_read_per_change_feeds_every_stream_of_the_realm(api: Api) -> None:
    node = await api.create(title="Root", body="v1")
    url = f"/v1/realms/{api.realm}/events/stream"
    async with AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(held_stream(api.client, url, ADMIN))
            for _ in range(STREAMS)
        ]
        deadline = time.monotonic() + 10
        while await _watchers(api) < STREAMS:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the realm's reader has made its first read
        with feed_reads(api.client.app) as reads:
            await api.patch(node, body="v2")
            await _until(lambda: all(seqs(s) == [2] for s in streams), 10, "every stream got seq 2")
            await asyncio.sleep(0.2)  # any read the change still caused
        # One read, maybe a second that finds nothing new (the change rang twice: once from
        # the write, once from the relay); never one per stream.
        assert 1 <= len(reads) <= 3, reads


async def test_filters_cursors_and_late_joiners_each_get_exactly_their_events(
    api: Api,
) -> None:
    a = await api.create(title="A", body="a1")  # seq 1
    b = await api.create(title="B", body="b1")  # seq 2
    url = f"/v1/realms/{api.realm}/events/stream"
    versions = "directive.version_created"
    async with AsyncExitStack() as stack:

        async def open_(query: str, headers: dict[str, str] | None = None) -> HeldStream:
            return await stack.enter_async_context(
                held_stream(api.client, f"{url}?{query}", {**ADMIN, **(headers or {})})
            )

        everything = await open_("after=0")
        only_versions = await open_(f"after=0&type={versions}")
        only_b = await open_(f"after=0&directive_id={b['id']}")
        resumed = await open_("after=0", {"Last-Event-ID": "1"})  # the header wins
        from_now = await open_("")
        a = await api.patch(a, body="a2")  # 3
        b = await api.patch(b, priority="high")  # 4
        late = await open_("after=2")  # joins mid-way, behind the live ones
        b = await api.patch(b, body="b2")  # 5
        a = await api.patch(a, status="paused")  # 6
        both = await open_(f"after=0&type={versions}&type=directive.updated")
        await _until(lambda: seqs(everything)[-1:] == [6], 10, "everything saw seq 6")
        await _until(lambda: seqs(late)[-1:] == [6], 10, "the late stream saw seq 6")
        await _until(lambda: seqs(both)[-1:] == [5], 10, "the typed stream saw seq 5")
        await asyncio.sleep(0.2)

    assert seqs(everything) == [1, 2, 3, 4, 5, 6]
    assert seqs(only_versions) == [3, 5]
    assert seqs(only_b) == [2, 4, 5]
    assert seqs(resumed) == [2, 3, 4, 5, 6]
    assert seqs(from_now) == [3, 4, 5, 6]
    assert seqs(late) == [3, 4, 5, 6]
    assert seqs(both) == [3, 4, 5]
    feed = {e["seq"]: e for e in await api.events()}
    for seq, _, data in frames(everything):
        assert data == feed[seq]


async def test_changes_in_quick_succession_arrive_each_once_in_order(api: Api) -> None:
    node = await api.create(title="Root", body="v0")
    url = f"/v1/realms/{api.realm}/events/stream"
    async with held_stream(api.client, url, ADMIN) as stream:
        for n in range(1, 31):
            node = await api.patch(node, body=f"v{n}")
        await _until(lambda: seqs(stream)[-1:] == [31], 10, "the stream saw seq 31")
        await asyncio.sleep(0.1)
    assert seqs(stream) == list(range(2, 32))


async def test_bad_stream_filters_are_400(api: Api) -> None:
    url = f"/v1/realms/{api.realm}/events/stream"
    for params in ({"type": "directive.exploded"}, {"directive_id": "nope"}):
        response = await api.client.get(url, params=params)
        assert_problem(response, 400, "invalid-request")
