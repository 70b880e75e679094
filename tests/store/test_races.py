"""Real races on PostgreSQL: many connections, each in its own transaction, released together.

Every writer opens its transaction and then waits at a barrier, so all of them are inside a
transaction before any of them writes: the database, not the test, decides who goes first.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import utcnow
from charter.db.session import Database
from charter.db.tables import directive_versions, events
from charter.domain.tree import Level
from charter.errors import CycleDetected, StaleRevision
from charter.services import writes
from charter.services.writes import Actor, Expected, NewDirective, Outcome, Patch
from charter.store import directives, realms
from charter.store.directives import Directive
from tests.support.api import new_realm_id

T = TypeVar("T")

ACTOR = Actor(key_id="racer")
MAX_DEPTH = 16
WRITERS = 20
ROUNDS = 8
# A guard against a wedged test run, not a measurement: a race that deadlocks fails here.
HANG_GUARD_SECONDS = 60


async def _race(
    db: Database, realm_id: str, writers: Sequence[Callable[[AsyncConnection], Awaitable[T]]]
) -> list[T | BaseException]:
    """Run each writer in its own transaction, all released at once; collect what each got."""
    barrier = asyncio.Barrier(len(writers))

    async def one(write: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with db.transaction(realm_id) as conn:
            await barrier.wait()
            return await write(conn)

    racing = asyncio.gather(*(one(w) for w in writers), return_exceptions=True)
    return await asyncio.wait_for(racing, HANG_GUARD_SECONDS)


def _update(
    realm_id: str, node: Directive, patch: Patch
) -> Callable[[AsyncConnection], Awaitable[Outcome]]:
    """A CAS update that expects the revision `node` was read at."""
    expected = Expected(node.revision, via_header=False)

    async def write(conn: AsyncConnection) -> Outcome:
        return await writes.update(conn, realm_id, ACTOR, node.id, expected, patch, MAX_DEPTH)

    return write


def _create_in(
    realm_id: str, new: NewDirective
) -> Callable[[AsyncConnection], Awaitable[Directive]]:
    async def write(conn: AsyncConnection) -> Directive:
        return await writes.create(conn, realm_id, ACTOR, new, MAX_DEPTH)

    return write


async def _new_realm(db: Database) -> str:
    realm_id = new_realm_id()
    async with db.transaction(realm_id) as conn:
        await realms.create(conn, realm_id, "races", utcnow())
    return realm_id


async def _create(
    db: Database, realm_id: str, level: Level, parent: Directive | None = None
) -> Directive:
    new = NewDirective(level, "Title", "Body", parent_id=None if parent is None else parent.id)
    async with db.transaction(realm_id) as conn:
        return await writes.create(conn, realm_id, ACTOR, new, MAX_DEPTH)


async def _seqs(db: Database, realm_id: str) -> tuple[list[int], int]:
    """The realm's event seqs in order, and its revision."""
    async with db.transaction(realm_id) as conn:
        query = select(events.c.seq).where(events.c.realm_id == realm_id).order_by(events.c.seq)
        seqs = list((await conn.execute(query)).scalars())
        return seqs, (await realms.get(conn, realm_id)).revision


async def _parents(db: Database, realm_id: str) -> dict[str, str | None]:
    async with db.transaction(realm_id) as conn:
        return {d.id: d.parent_id for d in await directives.all_in_realm(conn, realm_id)}


def _assert_acyclic(parents: dict[str, str | None]) -> None:
    for node in parents:
        current = parents[node]
        for _ in range(len(parents)):
            if current is None:
                break
            assert current != node, f"{node} is its own ancestor"
            current = parents[current]
        assert current is None, f"{node} does not reach a root"


def _split(results: list[T | BaseException]) -> tuple[list[T], list[BaseException]]:
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    return won, lost


async def test_exactly_one_of_many_concurrent_cas_writers_wins_each_round(
    pg_db: Database,
) -> None:
    realm_id = await _new_realm(pg_db)
    node = await _create(pg_db, realm_id, Level.REALM)

    for round_no in range(ROUNDS):
        expected = Expected(node.revision, via_header=False)
        racers = [
            _update(realm_id, node, Patch(body=f"round {round_no}, writer {n}"))
            for n in range(WRITERS)
        ]

        won, lost = _split(await _race(pg_db, realm_id, racers))

        assert len(won) == 1, lost
        assert len(lost) == WRITERS - 1
        for error in lost:
            assert isinstance(error, StaleRevision), repr(error)
            assert error.current_revision == expected.revision + 1
        node = won[0].directive
        assert node.revision == expected.revision + 1
        assert node.active_version == node.latest_version == round_no + 2

    async with pg_db.transaction(realm_id) as conn:
        v = directive_versions
        query = (
            select(v.c.version, v.c.based_on, v.c.body)
            .where(v.c.realm_id == realm_id, v.c.directive_id == node.id)
            .order_by(v.c.version)
        )
        stored = list(await conn.execute(query))
        current = await directives.get(conn, realm_id, node.id)
    assert [row.version for row in stored] == list(range(1, ROUNDS + 2))
    assert [row.based_on for row in stored] == [None, *range(1, ROUNDS + 1)]
    assert current.body == stored[-1].body == node.body
    seqs, realm_revision = await _seqs(pg_db, realm_id)
    assert seqs == list(range(1, ROUNDS + 2))
    assert realm_revision == ROUNDS + 1


async def test_the_cas_statement_alone_lets_exactly_one_writer_through(pg_db: Database) -> None:
    """Without the realm lock that the services take: the one UPDATE is enough on its own."""
    realm_id = await _new_realm(pg_db)
    node = await _create(pg_db, realm_id, Level.REALM)

    for round_no in range(ROUNDS):
        expected = node.revision
        racers = [
            functools.partial(
                directives.compare_and_swap,
                realm_id=realm_id,
                directive_id=node.id,
                expected_revision=expected,
                values={"metadata": {"writer": n, "round": round_no}},
            )
            for n in range(WRITERS)
        ]

        results = await _race(pg_db, realm_id, racers)

        rows, errors = _split(results)
        assert errors == []
        swapped = [row for row in rows if row is not None]
        assert len(swapped) == 1
        async with pg_db.transaction(realm_id) as conn:
            node = await directives.get(conn, realm_id, node.id)
        assert node.revision == expected + 1
        assert node.metadata == swapped[0].metadata


@pytest.mark.parametrize("through_descendants", [False, True], ids=["direct", "via-children"])
async def test_two_concurrent_moves_never_close_a_cycle(
    pg_db: Database, through_descendants: bool
) -> None:
    realm_id = await _new_realm(pg_db)
    root = await _create(pg_db, realm_id, Level.REALM)

    for _ in range(ROUNDS):
        a = await _create(pg_db, realm_id, Level.TEAM, root)
        b = await _create(pg_db, realm_id, Level.TEAM, root)
        # Direct: a under b and b under a. Via children: a under b's child and b under a's.
        a_target = await _create(pg_db, realm_id, Level.TEAM, b) if through_descendants else b
        b_target = await _create(pg_db, realm_id, Level.TEAM, a) if through_descendants else a
        racers = [
            _update(realm_id, a, Patch(parent_id=a_target.id)),
            _update(realm_id, b, Patch(parent_id=b_target.id)),
        ]

        results = await _race(pg_db, realm_id, racers)

        won, lost = _split(results)
        assert len(won) == 1, lost
        assert len(lost) == 1
        assert isinstance(lost[0], CycleDetected), repr(lost[0])
        _assert_acyclic(await _parents(pg_db, realm_id))

    seqs, realm_revision = await _seqs(pg_db, realm_id)
    assert seqs == list(range(1, realm_revision + 1))


async def test_concurrent_creates_in_one_realm_get_gapless_event_seqs(pg_db: Database) -> None:
    realm_id = await _new_realm(pg_db)
    racers = [
        _create_in(realm_id, NewDirective(Level.REALM, f"Root {n}", "Body")) for n in range(WRITERS)
    ]

    created, errors = _split(await _race(pg_db, realm_id, racers))

    assert errors == []
    seqs, realm_revision = await _seqs(pg_db, realm_id)
    assert seqs == list(range(1, WRITERS + 1))
    assert realm_revision == WRITERS
    async with pg_db.transaction(realm_id) as conn:
        query = select(events.c.directive_id, events.c.type).where(events.c.realm_id == realm_id)
        written = list(await conn.execute(query))
    assert sorted(row.directive_id for row in written) == sorted(d.id for d in created)
    assert {row.type for row in written} == {"directive.created"}


async def test_concurrent_writes_of_every_kind_keep_the_feed_gapless(pg_db: Database) -> None:
    realm_id = await _new_realm(pg_db)
    root = await _create(pg_db, realm_id, Level.REALM)
    teams = [await _create(pg_db, realm_id, Level.TEAM, root) for _ in range(12)]

    writers: list[Callable[[AsyncConnection], Awaitable[object]]] = []
    writers += [_update(realm_id, t, Patch(title="Retitled", body="New")) for t in teams[:6]]
    writers += [
        _update(realm_id, t, Patch(parent_id=under.id))
        for t, under in zip(teams[6:9], teams[9:], strict=True)
    ]
    writers += [
        _create_in(realm_id, NewDirective(Level.AGENT, f"Agent {n}", "Body", parent_id=root.id))
        for n in range(6)
    ]
    before, _ = await _seqs(pg_db, realm_id)

    done, errors = _split(await _race(pg_db, realm_id, writers))

    assert errors == []
    seqs, realm_revision = await _seqs(pg_db, realm_id)
    assert seqs == list(range(1, len(before) + len(done) + 1))
    assert realm_revision == seqs[-1]
    _assert_acyclic(await _parents(pg_db, realm_id))
