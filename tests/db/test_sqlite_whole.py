"""A whole SQLite transaction as one call on the connection's thread (`Database.whole`)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import utcnow
from charter.db.session import Database
from charter.db.sqlite_driver import AwaitedElsewhere
from charter.db.tables import realms as realms_table
from charter.domain.events import EventType
from charter.runtime import open_runtime
from charter.settings import Settings
from charter.store import events, realms
from charter.store.events import Committed, NewEvent


async def _exists(db: Database, realm_id: str) -> bool:
    async with db.transaction() as conn:
        query = select(realms_table.c.id).where(realms_table.c.id == realm_id)
        return (await conn.execute(query)).first() is not None


@pytest.fixture
async def db(sqlite_url: str) -> Database:
    return Database.connect(sqlite_url)


async def test_runs_on_the_database_thread_and_commits(db: Database) -> None:
    realm_id = f"w-{uuid.uuid4().hex[:12]}"
    loop_thread = threading.get_ident()

    async def work(conn: AsyncConnection) -> int:
        await realms.create(conn, realm_id, "Whole", utcnow())
        revision = (await realms.get(conn, realm_id)).revision
        return threading.get_ident() if revision == 0 else -1

    try:
        ran_on = await db.whole(None, work)
        assert ran_on not in (loop_thread, -1)
        assert await _exists(db, realm_id)
        # The connection is back in the pool, usable as ever, outside any transaction.
        async with db.transaction() as conn:
            assert (await realms.get(conn, realm_id)).name == "Whole"
    finally:
        await db.dispose()


async def test_an_error_rolls_the_whole_back(db: Database) -> None:
    realm_id = f"w-{uuid.uuid4().hex[:12]}"

    class Refused(Exception):
        pass

    async def work(conn: AsyncConnection) -> None:
        await realms.create(conn, realm_id, "Refused", utcnow())
        raise Refused

    try:
        with pytest.raises(Refused):
            await db.whole(None, work)
        assert not await _exists(db, realm_id)
    finally:
        await db.dispose()


async def test_awaiting_anything_else_is_refused_and_rolled_back(db: Database) -> None:
    realm_id = f"w-{uuid.uuid4().hex[:12]}"

    async def work(conn: AsyncConnection) -> None:
        await realms.create(conn, realm_id, "Slept", utcnow())
        await asyncio.sleep(0)  # needs the event loop, which the database's thread is not

    try:
        with pytest.raises((AwaitedElsewhere, RuntimeError)):
            await db.whole(None, work)
        assert not await _exists(db, realm_id)
    finally:
        await db.dispose()


async def test_whole_calls_take_turns(db: Database) -> None:
    """Eight at once on the one connection: each sees the one before it committed."""
    realm_id = f"w-{uuid.uuid4().hex[:12]}"
    try:
        async with db.transaction() as conn:
            await realms.create(conn, realm_id, "Turns", utcnow())

        async def bump(conn: AsyncConnection) -> int:
            event = NewEvent(EventType.UPDATED, "dir_turns", 1, None, "test", utcnow())
            seq = await events.append(conn, realm_id, [event])  # the realm revision, raised
            assert seq is not None
            return seq

        seen = await asyncio.gather(*(db.whole(realm_id, bump) for _ in range(8)))
        assert sorted(seen) == list(range(1, 9))
        async with db.transaction() as conn:
            assert (await realms.get(conn, realm_id)).revision == 8
    finally:
        await db.dispose()


async def test_a_caller_cancelled_mid_call_still_has_its_commit_delivered(sqlite_url: str) -> None:
    """The call runs on to its end on the thread once made: what it committed reaches the
    relay although the caller was cancelled meanwhile."""
    realm_id = f"w-{uuid.uuid4().hex[:12]}"
    async with open_runtime(Settings(database_url=sqlite_url)) as runtime:
        async with runtime.write(realm_id) as conn:
            await realms.create(conn, realm_id, "Late", utcnow())
        delivered: list[Committed] = []
        passed_on = runtime.relay.committed

        async def recording(changes: Sequence[Committed]) -> None:
            delivered.extend(changes)
            await passed_on(changes)

        runtime.relay.committed = recording  # type: ignore[method-assign]
        started = threading.Event()

        async def slow_write(conn: AsyncConnection) -> None:
            started.set()
            await conn.execute(text(_SLOW))  # long enough to be cancelled inside
            event = NewEvent(EventType.UPDATED, "dir_late", 1, None, "test", utcnow())
            await events.append(conn, realm_id, [event])

        call = asyncio.create_task(runtime.write_whole(realm_id, slow_write))
        assert await asyncio.to_thread(started.wait, 10)  # the call is running on its thread
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        for _ in range(500):
            if delivered:
                break
            await asyncio.sleep(0.01)
        assert [(c.realm, c.stamp) for c in delivered] == [(realm_id, 1)]
        async with runtime.db.transaction(realm_id) as conn:
            assert [e.seq for e in await events.feed(conn, realm_id, 0, 10)] == [1]


# A statement that keeps SQLite busy for a while (a few hundred ms on this machine).
_SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000)"
    " SELECT count(*) FROM c"
)


async def test_the_work_runs_in_the_callers_context(db: Database) -> None:
    """Log lines keep the request id, statement spans their trace: the caller's context."""
    seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="none")
    seen.set("the caller's")

    async def work(conn: AsyncConnection) -> str:
        await conn.execute(select(1))
        return seen.get()

    try:
        assert await db.whole(None, work) == "the caller's"
    finally:
        await db.dispose()


async def test_a_cancelled_direct_caller_gives_the_connection_back_only_once_the_call_ended(
    db: Database,
) -> None:
    """`db.whole` cancelled while its call runs on the thread: the call commits whole, and
    the next caller, queued for the one connection meanwhile, begins after it and commits
    whole too. (at_once waits for the call to end before the connection goes back to the
    pool; aiosqlite's queue happens to order the pool's reset after it as well, so this
    passes without that wait too: it pins the outcome, not the mechanism.)"""
    first, second = (f"w-{uuid.uuid4().hex[:12]}" for _ in range(2))
    started = threading.Event()

    async def slow(conn: AsyncConnection) -> None:
        await realms.create(conn, first, "First", utcnow())
        started.set()
        await conn.execute(text(_SLOW))  # long enough to be cancelled inside
        await events.append(conn, first, [_event()])  # events, not a bare revision: no gap

    async def next_one(conn: AsyncConnection) -> int:
        await realms.create(conn, second, "Second", utcnow())
        revision = await events.append(conn, second, [_event(), _event()])
        assert revision is not None
        return revision

    try:
        call = asyncio.create_task(db.whole(None, slow))
        assert await asyncio.to_thread(started.wait, 10)
        call.cancel()
        after = asyncio.create_task(db.whole(None, next_one))
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await after == 2
        async with db.transaction() as conn:
            assert (await realms.get(conn, first)).revision == 1
            assert (await realms.get(conn, second)).revision == 2
    finally:
        await db.dispose()


def _event() -> NewEvent:
    return NewEvent(EventType.UPDATED, "dir_whole", 1, None, "test", utcnow())
