"""The shared event reads (services/feeds.py) with a window of two events, so that it moves
past a slow stream and a late one: each still gets every event of its own once, in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.cache.hub import Hub, Watch
from charter.cache.local import LocalTier
from charter.cache.watch import Ending
from charter.db.session import Database
from charter.services.feeds import Feeds, Filter
from charter.store.events import Event
from tests.support.api import Api
from tests.support.checks import realm_revision

T = TypeVar("T")

HEARTBEAT = 0.05
EVERY = Filter()


def _seq_frame(event: Event) -> bytes:
    return f"{event.seq}".encode()


class Counted:
    """The database as the feeds see it, counting their transactions: the test client blocks
    this loop for a whole request, so on SQLite a feed read still open at a request would hold
    the database's one write lock while that request waits on it (and fails after the busy
    timeout). `quiet` returns once no feed read is open or about to open."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.busy = 0

    @asynccontextmanager
    async def transaction(self, realm_id: str | None = None) -> AsyncIterator[AsyncConnection]:
        self.busy += 1
        try:
            async with self.db.transaction(realm_id) as conn:
                yield conn
        finally:
            self.busy -= 1

    async def replayed(
        self,
        realm_id: str,
        read: Callable[[AsyncConnection], Awaitable[T]],
        depends_on: int | None = None,
    ) -> T:
        self.busy += 1
        try:
            return await self.db.replayed(realm_id, read, depends_on)
        finally:
            self.busy -= 1

    async def quiet(self, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            await asyncio.sleep(0.01)  # a task just made or just rung reaches its read
            if not self.busy:
                return
            assert time.monotonic() < deadline, "a feed read stayed open"


class Reader:
    """Consumes one stream; with the gate shut it stops between two frames, as a stream whose
    client does not read stops at its send."""

    def __init__(self, frames: AsyncGenerator[bytes | None, None]) -> None:
        self.frames = frames
        self.got: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for frame in self.frames:
            if frame is not None:
                self.got.append(int(frame))
            await self.gate.wait()

    async def until(self, last: int, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while self.got[-1:] != [last]:
            assert time.monotonic() < deadline, f"stopped at {self.got}"
            assert not self.task.done(), self.task
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _change(
    api: Api, hub: Hub, db: Counted, node: dict[str, Any], n: int, witness: Reader
) -> dict[str, Any]:
    """Odd n: new text (a version); even n: a new priority (an attribute change). Returns once
    `witness` (a stream that always reads) has the event: the window's read is over."""
    fields: dict[str, Any] = (
        {"body": f"v{n}"} if n % 2 else {"priority": ["high", "low"][n % 4 // 2]}
    )
    await db.quiet()
    node = await api.patch(node, **fields)
    revision = await realm_revision(api)
    hub.deliver(api.realm, [], revision)  # what the bus does, after commit
    await witness.until(revision)
    return node


async def test_slow_and_late_streams_miss_nothing_and_repeat_nothing(
    api: Api, db: Database
) -> None:
    node = await api.create(title="Root", body="v0")  # seq 1
    hub = Hub(LocalTier())
    counted = Counted(db)
    feeds = Feeds(counted, hub, keep=2)  # type: ignore[arg-type]
    realm = api.realm

    def follow(cursor: int, head: int, only: Filter = EVERY) -> Reader:
        frames = feeds.follow(realm, cursor, head, only, Watch(), _seq_frame, HEARTBEAT)
        return Reader(frames)

    fast = follow(1, 1)
    slow = follow(0, 1)
    readers = [fast, slow]
    try:
        slow.gate.clear()  # it takes seq 1, then its client stops reading
        await slow.until(1)
        for n in range(1, 11):  # seqs 2 … 11
            node = await _change(api, hub, counted, node, n, fast)
        assert feeds.readers == 1  # one window, one reader, for the realm's streams
        await counted.quiet()
        late = follow(3, await realm_revision(api))  # behind the window: reads its gap itself
        updates = follow(0, 11, Filter(frozenset({"directive.updated"})))
        readers += [late, updates]
        await late.until(11)
        await updates.until(11)
        slow.gate.set()
        await slow.until(11)
        for n in range(11, 13):  # seqs 12, 13
            node = await _change(api, hub, counted, node, n, fast)
        for reader in (slow, late, updates):
            await reader.until(13)
        await asyncio.sleep(3 * HEARTBEAT)
    finally:
        for reader in readers:
            await reader.stop()

    assert fast.got == list(range(2, 14))
    assert slow.got == list(range(1, 14))
    assert late.got == list(range(4, 14))
    assert updates.got == list(range(3, 14, 2))  # the priority changes: even n, odd seq
    for _ in range(100):
        if feeds.readers == 0:
            break
        await asyncio.sleep(0.01)
    try:
        assert feeds.readers == 0  # the last stream gone, its reader stops
    finally:
        await feeds.close()


async def test_an_ended_watch_ends_the_stream_before_any_later_event(
    api: Api, db: Database
) -> None:
    """Revoked (or stopping) while its client is slow: nothing more is sent, not even what
    the window already holds for it."""
    node = await api.create(title="Root", body="v0")  # seq 1
    hub = Hub(LocalTier())
    counted = Counted(db)
    feeds = Feeds(counted, hub)  # type: ignore[arg-type]
    watch = Watch()
    ended = Reader(feeds.follow(api.realm, 0, 1, EVERY, watch, _seq_frame, HEARTBEAT))
    witness = Reader(feeds.follow(api.realm, 1, 1, EVERY, Watch(), _seq_frame, HEARTBEAT))
    try:
        ended.gate.clear()
        await ended.until(1)
        for n in range(1, 4):  # seqs 2, 3, 4: in the window, waiting for the slow stream
            node = await _change(api, hub, counted, node, n, witness)
        watch.end(Ending.REVOKED)
        ended.gate.set()
        await asyncio.wait_for(ended.task, 5)
        assert ended.got == [1]
    finally:
        await ended.stop()
        await witness.stop()
        await feeds.close()
