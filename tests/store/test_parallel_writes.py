"""Node writes in parallel within a realm, and the feed's promises without the realm lock.

ADR 0006: a write on one node (text, attributes, an open status, rollback, deactivation)
shares the realm lock; structure writes (creates, moves, closing a node, owner changes) take
it alone; every write's events are numbered last, by the realm revision, under a row lock held
to commit. PostgreSQL only: SQLite runs one transaction at a time. Where a test needs one
transaction held open, it watches `pg_stat_activity` for the other's lock wait: the database
says who waits, not a timer.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware, utcnow
from charter.db.session import Database
from charter.db.tables import events
from charter.domain.events import EventType
from charter.domain.tree import Level, Priority, Status
from charter.errors import CycleDetected
from charter.services import activation, writes
from charter.services.writes import Actor, Expected, NewDirective, Patch
from charter.store import directives, realms
from charter.store import events as feed
from charter.store.directives import Directive
from tests.support.api import new_realm_id

ACTOR = Actor(key_id="parallel")
MAX_DEPTH = 16
HANG_GUARD_SECONDS = 30  # a guard against a wedged run, not a measurement


async def _realm_with(db: Database, count: int) -> tuple[str, list[Directive]]:
    realm_id = new_realm_id()
    async with db.transaction(realm_id) as conn:
        await realms.create(conn, realm_id, "parallel", utcnow())
    nodes = []
    for n in range(count):
        async with db.transaction(realm_id) as conn:
            new = NewDirective(Level.REALM, f"node {n}", "text", owner_agent_id=f"agent-{n}")
            nodes.append(await writes.create(conn, realm_id, ACTOR, new, MAX_DEPTH))
    return realm_id, nodes


class _Undo(Exception):
    """Raised to roll a transaction back."""


async def _backend(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _waits_on_a_lock(db: Database, pid: int) -> None:
    """Returns once backend `pid` waits on a lock (the database's word for it)."""
    query = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        while True:
            async with db.transaction() as conn:
                if (await conn.execute(query, {"pid": pid})).scalar() == "Lock":
                    return
            await asyncio.sleep(0.01)


@asynccontextmanager
async def _held(
    db: Database, realm_id: str
) -> AsyncIterator[tuple[AsyncConnection, asyncio.Event]]:
    """A transaction that commits when the caller sets the event (the block runs meanwhile)."""
    release = asyncio.Event()
    ready: asyncio.Queue[AsyncConnection] = asyncio.Queue()

    async def hold() -> None:
        async with db.transaction(realm_id) as conn:
            await ready.put(conn)
            await release.wait()

    task = asyncio.create_task(hold())
    try:
        yield await ready.get(), release
    finally:
        release.set()
        await asyncio.wait_for(task, HANG_GUARD_SECONDS)


async def _feed(db: Database, realm_id: str, after: int) -> list[feed.Event]:
    async with db.transaction(realm_id) as conn:
        return await feed.feed(conn, realm_id, after, 1000)


async def _update(db: Database, realm_id: str, node: Directive, patch: Patch) -> writes.Outcome:
    async with db.transaction(realm_id) as conn:
        expected = Expected(node.revision, via_header=False)
        return await writes.update(conn, realm_id, ACTOR, node.id, expected, patch, MAX_DEPTH)


async def test_a_node_write_does_not_wait_for_another_nodes_open_write(pg_db: Database) -> None:
    realm_id, (x, y) = await _realm_with(pg_db, 2)
    async with _held(pg_db, realm_id) as (conn, release):
        expected = Expected(x.revision, via_header=False)
        await writes.update(conn, realm_id, ACTOR, x.id, expected, Patch(body="x's"), MAX_DEPTH)
        # A's events are numbered and uncommitted. B's whole node part (the shared realm lock,
        # the read, the revision check, the CAS of its own row) runs meanwhile.

        async def node_part() -> None:
            async with pg_db.transaction(realm_id) as other:
                current, _ = await asyncio.wait_for(
                    writes.read_for_write(other, realm_id, y.id, Expected(y.revision, False)),
                    HANG_GUARD_SECONDS,
                )
                row = await asyncio.wait_for(
                    directives.compare_and_swap(
                        other, realm_id, y.id, y.revision, {"priority": Priority.HIGH.value}
                    ),
                    HANG_GUARD_SECONDS,
                )
                assert row is not None
                assert current.revision == y.revision
                raise _Undo

        with pytest.raises(_Undo):
            await node_part()
        release.set()


async def test_a_structure_write_waits_for_open_node_writes(pg_db: Database) -> None:
    realm_id, (x,) = await _realm_with(pg_db, 1)
    async with _held(pg_db, realm_id) as (conn, release):
        expected = Expected(x.revision, via_header=False)
        await writes.update(conn, realm_id, ACTOR, x.id, expected, Patch(body="x's"), MAX_DEPTH)

        async def create() -> tuple[int, Directive]:
            async with pg_db.transaction(realm_id) as other:
                pid = await _backend(other)
                started.set_result(pid)
                new = NewDirective(Level.TEAM, "child", "text", parent_id=x.id)
                return pid, await writes.create(other, realm_id, ACTOR, new, MAX_DEPTH)

        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        creating = asyncio.create_task(create())
        await _waits_on_a_lock(pg_db, await started)
        assert not creating.done()
        release.set()
    _, child = await asyncio.wait_for(creating, HANG_GUARD_SECONDS)
    assert child.parent_id == x.id


@pytest.mark.parametrize("change", ["owner", "close", "move"])
async def test_structure_patches_wait_for_a_node_write_on_an_ancestor(
    pg_db: Database, change: str
) -> None:
    realm_id, (root, other_root) = await _realm_with(pg_db, 2)
    patch = {
        "owner": Patch(owner_agent_id="someone-else"),  # in its ancestors' audience
        "close": Patch(status=Status.COMPLETED),  # closing reads the subtree's statuses
        "move": Patch(parent_id=other_root.id),  # a move reads the ancestry
    }[change]
    async with pg_db.transaction(realm_id) as conn:
        new = NewDirective(Level.TEAM, "child", "text", parent_id=root.id, owner_agent_id="kid")
        child = await writes.create(conn, realm_id, ACTOR, new, MAX_DEPTH)
    async with _held(pg_db, realm_id) as (conn, release):
        expected = Expected(root.revision, via_header=False)
        await writes.update(conn, realm_id, ACTOR, root.id, expected, Patch(body="r"), MAX_DEPTH)

        async def structure() -> writes.Outcome:
            async with pg_db.transaction(realm_id) as other:
                started.set_result(await _backend(other))
                expected = Expected(child.revision, via_header=False)
                return await writes.update(
                    other, realm_id, ACTOR, child.id, expected, patch, MAX_DEPTH
                )

        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(structure())
        await _waits_on_a_lock(pg_db, await started)
        assert not task.done()
        release.set()
    outcome = await asyncio.wait_for(task, HANG_GUARD_SECONDS)
    assert outcome.changed
    # The root's text event named the child's owner as it was then: the owner change, after
    # it in the feed, names both the old and the new owner.
    page = await _feed(pg_db, realm_id, 0)
    assert [ev.directive_id for ev in page[-2:]] == [root.id, child.id]
    assert "kid" in page[-2].affected_agents


async def test_the_outbox_gap_cannot_open(pg_db: Database) -> None:
    """A takes the lower position and B tries to commit first: B waits at the sequencer, a
    reader polling meanwhile sees neither, and afterwards gets A then B, each exactly once."""
    realm_id, (x, y) = await _realm_with(pg_db, 2)
    cursor = (await _feed(pg_db, realm_id, 0))[-1].seq

    async with _held(pg_db, realm_id) as (conn, release):
        a = await writes.update(
            conn, realm_id, ACTOR, x.id, Expected(x.revision, False), Patch(body="A"), MAX_DEPTH
        )

        async def b_write() -> writes.Outcome:
            async with pg_db.transaction(realm_id) as other:
                started.set_result(await _backend(other))
                patch = Patch(body="B", priority=Priority.LOW)  # the general path
                expected = Expected(y.revision, False)
                return await writes.update(other, realm_id, ACTOR, y.id, expected, patch, 16)

        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        b_task = asyncio.create_task(b_write())
        await _waits_on_a_lock(pg_db, await started)

        # Between: B is blocked, A uncommitted; a poll finds nothing, and moves no cursor.
        assert await _feed(pg_db, realm_id, cursor) == []
        assert not b_task.done()
        release.set()
    b = await asyncio.wait_for(b_task, HANG_GUARD_SECONDS)

    got = await _feed(pg_db, realm_id, cursor)
    assert [(ev.directive_id, ev.revision) for ev in got] == [
        (x.id, a.directive.revision),
        (y.id, b.directive.revision),
        (y.id, b.directive.revision),  # the body's event and the priority's, one revision
    ]
    assert [ev.seq for ev in got] == [cursor + 1, cursor + 2, cursor + 3]
    assert await _feed(pg_db, realm_id, got[-1].seq) == []  # resumed: nothing twice
    assert [ev.occurred_at for ev in got] == sorted(ev.occurred_at for ev in got)


async def _node_writes(db: Database, realm_id: str, node: Directive, rounds: int) -> int:
    """One writer's rounds on its own node, through every node path; how many changed it."""
    current = node
    made = 0
    for r in range(rounds):
        async with db.transaction(realm_id) as conn:
            expected = Expected(current.revision, via_header=False)
            kind = r % 5
            if kind == 3:
                outcome = await activation.rollback(
                    conn, realm_id, ACTOR, node.id, expected, 1, None
                )
            elif kind == 4:
                outcome = await activation.deactivate(conn, realm_id, ACTOR, node.id, expected)
            else:
                patch = [
                    Patch(body=f"{node.id} {r}"),
                    Patch(priority=Priority.HIGH if r % 2 else Priority.LOW),
                    Patch(status=Status.PAUSED if r % 2 else Status.ACTIVE),
                ][kind]
                outcome = await writes.update(
                    conn, realm_id, ACTOR, node.id, expected, patch, MAX_DEPTH
                )
            made += outcome.changed
            current = outcome.directive
    return made


async def test_many_writers_over_one_realms_directives_keep_every_feed_promise(
    pg_db: Database,
) -> None:
    writers, rounds = 12, 10
    realm_id, nodes = await _realm_with(pg_db, writers)
    start = (await _feed(pg_db, realm_id, 0))[-1].seq
    seen: list[int] = []
    stop = asyncio.Event()

    async def reader() -> None:
        """Polls and resumes from its cursor all along, as a feed client does."""
        cursor = start
        while True:
            done = stop.is_set()
            page = await _feed(pg_db, realm_id, cursor)
            seen.extend(ev.seq for ev in page)
            cursor = page[-1].seq if page else cursor
            if done:
                return
            await asyncio.sleep(0)

    polling = asyncio.create_task(reader())
    runs = [_node_writes(pg_db, realm_id, node, rounds) for node in nodes]
    # A structure write now and then, racing the node writes: a create under each node.
    creates = []
    for node in nodes[:4]:
        new = NewDirective(Level.TEAM, "child", "text", parent_id=node.id, owner_agent_id="kid")

        async def create(new: NewDirective = new) -> Directive:
            async with pg_db.transaction(realm_id) as conn:
                return await writes.create(conn, realm_id, ACTOR, new, MAX_DEPTH)

        creates.append(create())
    done = await asyncio.wait_for(asyncio.gather(*runs, *creates), HANG_GUARD_SECONDS * 2)
    made = [n for n in done if isinstance(n, int)]
    stop.set()
    await asyncio.wait_for(polling, HANG_GUARD_SECONDS)

    full = await _feed(pg_db, realm_id, start)
    # Every committed event reached the resuming reader exactly once, in feed order.
    assert seen == [ev.seq for ev in full]
    assert [ev.seq for ev in full] == list(range(start + 1, start + len(full) + 1))
    assert len({(ev.directive_id, ev.type, ev.revision) for ev in full}) == len(full)
    assert len(made) == writers
    assert len(full) >= sum(made) + len(creates)
    # One directive's events in commit order: its revisions never go back along the feed.
    by_directive: dict[str, list[int]] = {}
    for ev in full:
        by_directive.setdefault(ev.directive_id, []).append(ev.revision)
    for revisions in by_directive.values():
        assert revisions == sorted(revisions)
    # Times follow feed order.
    times = [aware(ev.occurred_at) for ev in full]
    assert all(a <= b for a, b in itertools.pairwise(times))
    async with pg_db.transaction(realm_id) as conn:
        assert (await realms.get(conn, realm_id)).revision == full[-1].seq
        for node in nodes:
            last = by_directive[node.id][-1]
            assert (await directives.get(conn, realm_id, node.id)).revision == last


async def test_moves_racing_node_writes_never_close_a_cycle(pg_db: Database) -> None:
    realm_id, (root,) = await _realm_with(pg_db, 1)
    rng = random.Random(6)
    for _ in range(4):
        teams = []
        for _ in range(4):
            async with pg_db.transaction(realm_id) as conn:
                new = NewDirective(Level.TEAM, "team", "text", parent_id=root.id)
                teams.append(await writes.create(conn, realm_id, ACTOR, new, MAX_DEPTH))
        # Every team moved under the next (a ring: exactly one move must fail, whatever the
        # order), while other nodes are rewritten: text writes share the lock moves take alone.
        others = []
        for _ in range(4):
            async with pg_db.transaction(realm_id) as conn:
                new = NewDirective(Level.AGENT, "agent", "text", parent_id=teams[0].id)
                others.append(await writes.create(conn, realm_id, ACTOR, new, MAX_DEPTH))
        ring = teams[1:] + teams[:1]
        moves = [
            _update(pg_db, realm_id, t, Patch(parent_id=u.id))
            for t, u in zip(teams, ring, strict=True)
        ]
        texts = [_update(pg_db, realm_id, n, Patch(body=f"b{rng.random()}")) for n in others]
        results = await asyncio.wait_for(
            asyncio.gather(*moves, *texts, return_exceptions=True), HANG_GUARD_SECONDS
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(failures) == 1, failures
        assert isinstance(failures[0], CycleDetected), repr(failures[0])
        async with pg_db.transaction(realm_id) as conn:
            parents = {d.id: d.parent_id for d in await directives.all_in_realm(conn, realm_id)}
        for node in parents:
            hop, steps = parents[node], 0
            while hop is not None:
                assert hop != node, f"{node} is its own ancestor"
                hop, steps = parents[hop], steps + 1
                assert steps <= len(parents)
    seqs = [ev.seq for ev in await _feed(pg_db, realm_id, 0)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_feed_times_and_order_hold_for_events_written_in_one_statement(
    pg_db: Database,
) -> None:
    """The sequencer's time is the events' time even when a write's own clock was earlier."""
    realm_id, (x,) = await _realm_with(pg_db, 1)

    async def append_early() -> None:
        async with pg_db.transaction(realm_id) as conn:
            last = (await feed.feed(conn, realm_id, 0, 100))[-1]
            early = last.occurred_at.replace(year=last.occurred_at.year - 1)
            new = feed.NewEvent(
                type=EventType.VERSION_CREATED,
                directive_id=x.id,
                revision=x.revision,
                version=1,
                actor="clock",
                occurred_at=early,
            )
            seq = await feed.append(conn, realm_id, [new])
            query = select(events.c.occurred_at).where(
                events.c.realm_id == realm_id, events.c.seq == seq
            )
            assert aware((await conn.execute(query)).scalar_one()) >= last.occurred_at
            raise _Undo

    with pytest.raises(_Undo):
        await append_early()
