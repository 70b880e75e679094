"""Timestamps in feed order: `occurred_at` never decreases along a realm's feed.

Order along the feed is decided under the realm lock, so every timestamp must be taken there
too. Many writers race through every write path (text-only PATCHes, which take PostgreSQL's
one-call swap, attribute changes, creates, rollbacks, deactivations), then the feed is read
back in seq order.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware, utcnow
from charter.db.session import Database
from charter.db.tables import events
from charter.domain.tree import Level, Priority
from charter.services import activation, writes
from charter.services.writes import Actor, Expected, NewDirective, Patch
from charter.store import directives, realms
from tests.support.api import new_realm_id

ACTOR = Actor(key_id="clock")
MAX_DEPTH = 16
WRITERS = 16
ROUNDS = 6
HANG_GUARD_SECONDS = 60  # a guard against a wedged run, not a measurement

Write = Callable[[AsyncConnection], Awaitable[object]]


async def _race(db: Database, realm_id: str, backend: str, writers: list[Write]) -> None:
    """Each writer in its own transaction. On PostgreSQL they all hold an open transaction
    before any writes (a barrier), so the database decides the order; SQLite has one
    connection, which serialises them in whatever order the event loop hands it out."""
    barrier = asyncio.Barrier(len(writers)) if backend == "postgres" else None

    async def one(write: Write) -> object:
        async with db.transaction(realm_id) as conn:
            if barrier is not None:
                await barrier.wait()
            return await write(conn)

    racing = asyncio.gather(*(one(w) for w in writers), return_exceptions=True)
    results = await asyncio.wait_for(racing, HANG_GUARD_SECONDS)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, failed


def _writer(realm_id: str, node: directives.Directive, i: int, round_: int) -> Write:
    """One write through one of the paths, chosen by the writer's number."""
    expected = Expected(node.revision, via_header=False)
    kind = i % 4

    async def write(conn: AsyncConnection) -> object:
        if kind == 3 and round_ % 2 == 1:
            return await activation.deactivate(conn, realm_id, ACTOR, node.id, expected)
        if kind == 3 and node.active_version is None:
            return await activation.rollback(conn, realm_id, ACTOR, node.id, expected, 1, None)
        if kind == 2:
            priority = Priority.HIGH if round_ % 2 else Priority.LOW
            patch = Patch(body=f"body {round_}", priority=priority)
        elif kind == 1:
            new = NewDirective(Level.TEAM, "child", "text", parent_id=node.id)
            return await writes.create(conn, realm_id, ACTOR, new, MAX_DEPTH)
        else:
            patch = Patch(title=f"title {round_}")
        return await writes.update(conn, realm_id, ACTOR, node.id, expected, patch, MAX_DEPTH)

    return write


async def _feed_times(db: Database, realm_id: str) -> list[tuple[int, datetime]]:
    async with db.transaction(realm_id) as conn:
        query = (
            select(events.c.seq, events.c.occurred_at)
            .where(events.c.realm_id == realm_id)
            .order_by(events.c.seq)
        )
        return [(row.seq, aware(row.occurred_at)) for row in await conn.execute(query)]


async def test_occurred_at_never_decreases_along_the_feed(db: Database, backend: str) -> None:
    realm_id = new_realm_id()
    async with db.transaction(realm_id) as conn:
        await realms.create(conn, realm_id, "clock", utcnow())
    nodes = []
    for i in range(WRITERS):
        async with db.transaction(realm_id) as conn:
            new = NewDirective(Level.REALM, f"node {i}", "text")
            nodes.append(await writes.create(conn, realm_id, ACTOR, new, MAX_DEPTH))
    for round_ in range(ROUNDS):
        writers = [_writer(realm_id, node, i, round_) for i, node in enumerate(nodes)]
        await _race(db, realm_id, backend, writers)
        async with db.transaction(realm_id) as conn:
            nodes = [await directives.get(conn, realm_id, node.id) for node in nodes]

    feed = await _feed_times(db, realm_id)
    assert len(feed) >= WRITERS * ROUNDS
    backwards = [
        (earlier, later) for earlier, later in itertools.pairwise(feed) if later[1] < earlier[1]
    ]
    assert not backwards, f"{len(backwards)} steps back in time, e.g. {backwards[:3]}"
