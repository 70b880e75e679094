"""Event streams share one read: each process reads a realm's new events once, for all its
streams of that realm.

A realm with open streams has a window here: its recent events, every one with
`floor < seq ≤ head`, and one reader task that the hub wakes on every change in the realm.
The reader reads the events past the head (one query, whatever the number of streams),
appends them and rings the realm's streams. Each stream then takes, from the window, what
lies past its own cursor and passes its own filters. A stream whose cursor is below the
window's floor (it resumed from an old `Last-Event-ID`, or its client read so slowly that
the window moved on) reads that gap from the database itself, up to the head it saw, and
then goes on from the window: no event is skipped or sent twice.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.cache.hub import Hub, Watch
from charter.db.session import Database
from charter.store import events
from charter.store.events import Event

log = logging.getLogger("charter.feeds")

PAGE = 500  # events per database read
KEEP = 1024  # events a window keeps (it trims to this past twice as many)
_IDLE_SECONDS = 60.0  # a reader reads again this often, even if nothing rang
_RETRY_SECONDS = 0.5  # after a failed read

Encode = Callable[[Event], bytes]


@dataclass(frozen=True, slots=True)
class Filter:
    """A stream's `type` and `directive_id` filters; empty: every event."""

    types: frozenset[str] = frozenset()
    directive_id: str | None = None

    def passes(self, event: Event) -> bool:
        if self.types and event.type not in self.types:
            return False
        return self.directive_id is None or event.directive_id == self.directive_id


class _Item:
    """An event of a window, framed once (by the first stream that sends it)."""

    __slots__ = ("_frame", "event", "seq")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.seq = event.seq
        self._frame: bytes | None = None

    def frame(self, encode: Encode) -> bytes:
        if self._frame is None:
            self._frame = encode(self.event)
        return self._frame


class _Window:
    def __init__(self, realm: str, head: int, keep: int) -> None:
        self.realm = realm
        self.keep = keep
        self.floor = head
        self.head = head
        self.items: list[_Item] = []
        self.streams: set[Watch] = set()
        self.bell: Watch | None = None  # the reader's, once it runs
        self.task: asyncio.Task[None] | None = None

    def extend(self, page: list[Event]) -> None:
        head = self.head
        for event in page:
            if event.seq > self.head:
                self.items.append(_Item(event))
                self.head = event.seq
        if self.head == head:
            # Nothing new (one change rings the reader up to three times: the write, the bus,
            # the relay): the streams sleep on. Waking thousands for nothing is what a write
            # with many streams open would pay for.
            return
        if len(self.items) > 2 * self.keep:
            cut = len(self.items) - self.keep
            self.floor = self.items[cut - 1].seq
            del self.items[:cut]
        for watch in self.streams:
            watch.ring()

    def since(self, cursor: int) -> list[_Item]:
        """The items past `cursor` (a copy: the reader may extend the window meanwhile)."""
        return self.items[bisect.bisect_right(self.items, cursor, key=_seq) :]


def _catch_up(
    realm: str, after: int, only: Filter, until: int
) -> Callable[[AsyncConnection], Awaitable[list[Event]]]:
    """The read of one page of a stream's catch-up: the events after `after`, up to `until`,
    that pass `only`."""

    async def read(conn: AsyncConnection) -> list[Event]:
        types = sorted(only.types)
        return await events.feed(conn, realm, after, PAGE, types, only.directive_id, until)

    return read


def _seq(item: _Item) -> int:
    return item.seq


class Feeds:
    def __init__(self, db: Database, hub: Hub, keep: int = KEEP) -> None:
        self.db = db
        self.hub = hub
        self.keep = keep
        self._windows: dict[str, _Window] = {}

    async def follow(
        self,
        realm: str,
        cursor: int,
        head: int,
        only: Filter,
        watch: Watch,
        encode: Encode,
        heartbeat: float,
    ) -> AsyncGenerator[bytes | None, None]:
        """The frames of the realm's events past `cursor` that pass `only`, as they come, and
        None after each `heartbeat` seconds without any; ends once `watch` is ended.

        `head` is a realm revision read before the call: every event up to it is committed.
        """
        window = self._join(realm, head, watch)
        try:
            while watch.ended is None:
                if cursor < window.floor:
                    upto = window.head
                    # Every event up to `upto` is committed: a replica that has replayed that
                    # revision has them all (ADR 0013), and the primary is not asked.
                    read = _catch_up(realm, cursor, only, upto)
                    page = await self.db.replayed(realm, read, depends_on=upto)
                    for event in page:
                        if watch.ended is not None:
                            return
                        yield encode(event)
                    cursor = page[-1].seq if len(page) == PAGE else upto
                    continue
                seen = window.head
                for item in window.since(cursor):
                    if watch.ended is not None:
                        return
                    if only.passes(item.event):
                        yield item.frame(encode)
                cursor = max(cursor, seen)
                if not await watch.wait(heartbeat):
                    yield None
        finally:
            self._leave(window, watch)

    def _join(self, realm: str, head: int, watch: Watch) -> _Window:
        window = self._windows.get(realm)
        if window is None:
            window = self._windows[realm] = _Window(realm, head, self.keep)
            window.task = asyncio.create_task(self._read(window), name="charter-feed")
        window.streams.add(watch)
        return window

    def _leave(self, window: _Window, watch: Watch) -> None:
        window.streams.discard(watch)
        if not window.streams and window.bell is not None:
            window.bell.ring()  # the reader stops

    async def _read(self, window: _Window) -> None:
        try:
            with self.hub.watch_realm(window.realm) as bell:
                window.bell = bell
                while window.streams:
                    try:
                        async with self.db.transaction(window.realm) as conn:
                            page = await events.feed(conn, window.realm, window.head, PAGE)
                    except Exception as exc:
                        log.warning("event feed read failed (%s); retrying", type(exc).__name__)
                        await asyncio.sleep(_RETRY_SECONDS)
                        continue
                    window.extend(page)
                    if len(page) < PAGE:
                        await bell.wait(_IDLE_SECONDS)
        finally:
            # No await between the last check of `streams` and this: a stream that joins
            # from now on makes a new window.
            if self._windows.get(window.realm) is window:
                del self._windows[window.realm]

    @property
    def readers(self) -> int:
        return len(self._windows)

    async def close(self) -> None:
        """Stop every reader (the process is stopping)."""
        tasks = [w.task for w in self._windows.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
