"""Rollouts on PostgreSQL: real races (of writers with one expected revision, one wins), and
row-level security on outcomes.

Each writer opens its transaction and waits at a barrier, so the database decides the order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import utcnow
from charter.db.session import Database
from charter.db.tables import events, rollout_outcomes
from charter.domain.tree import Level
from charter.errors import NotFound, StaleRevision
from charter.services import rollouts, writes
from charter.services.rollouts import RolloutChange
from charter.services.writes import Actor, Expected, NewDirective, Outcome, Patch
from charter.store import directives, realms
from charter.store import rollouts as store_rollouts
from charter.store.rollouts import NewOutcome
from tests.support.api import new_realm_id

T = TypeVar("T")
ACTOR = Actor(key_id="racer")
WRITERS = 12
HANG_GUARD_SECONDS = 60


async def _race(
    db: Database, realm_id: str, writers: Sequence[Callable[[AsyncConnection], Awaitable[T]]]
) -> list[T | BaseException]:
    barrier = asyncio.Barrier(len(writers))

    async def one(write: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with db.transaction(realm_id) as conn:
            await barrier.wait()
            return await write(conn)

    racing = asyncio.gather(*(one(w) for w in writers), return_exceptions=True)
    return await asyncio.wait_for(racing, HANG_GUARD_SECONDS)


async def _drafted(db: Database) -> tuple[str, str, int]:
    """A realm with one directive whose version 2 is a draft: (realm, id, revision)."""
    realm_id = new_realm_id()
    async with db.transaction(realm_id) as conn:
        await realms.create(conn, realm_id, "rollout races", utcnow())
        made = await writes.create(
            conn, realm_id, ACTOR, NewDirective(Level.REALM, "T", "v1", owner_agent_id="a"), 16
        )
        draft = Patch(body="v2", activate=False)
        outcome = await writes.update(
            conn, realm_id, ACTOR, made.id, Expected(made.revision, False), draft, 16
        )
    return realm_id, made.id, outcome.directive.revision


async def _event_count(db: Database, realm_id: str, directive_id: str) -> int:
    async with db.transaction(realm_id) as conn:
        query = select(func.count()).where(
            events.c.realm_id == realm_id, events.c.directive_id == directive_id
        )
        return int((await conn.execute(query)).scalar_one())


async def test_one_of_many_rollout_starts_wins(pg_db: Database) -> None:
    realm_id, directive_id, revision = await _drafted(pg_db)
    before = await _event_count(pg_db, realm_id, directive_id)

    def start(percent: int) -> Callable[[AsyncConnection], Awaitable[Outcome]]:
        async def write(conn: AsyncConnection) -> Outcome:
            change = RolloutChange(version=2, percent=percent)
            expected = Expected(revision, via_header=False)
            return await rollouts.put(conn, realm_id, ACTOR, directive_id, expected, change)

        return write

    results = await _race(pg_db, realm_id, [start(p) for p in range(1, WRITERS + 1)])
    won = [r for r in results if isinstance(r, Outcome)]
    assert len(won) == 1
    assert all(isinstance(r, StaleRevision) for r in results if not isinstance(r, Outcome))
    async with pg_db.transaction(realm_id) as conn:
        now = await directives.get(conn, realm_id, directive_id)
    assert now.revision == revision + 1
    assert now.rollout == won[0].directive.rollout
    assert await _event_count(pg_db, realm_id, directive_id) == before + 1


async def test_a_promote_and_an_abort_at_once_end_the_rollout_once(pg_db: Database) -> None:
    realm_id, directive_id, revision = await _drafted(pg_db)
    async with pg_db.transaction(realm_id) as conn:
        change = RolloutChange(version=2, percent=50)
        started = await rollouts.put(
            conn, realm_id, ACTOR, directive_id, Expected(revision, False), change
        )
    expected = Expected(started.directive.revision, via_header=False)

    async def promote(conn: AsyncConnection) -> Outcome:
        return await rollouts.promote(conn, realm_id, ACTOR, directive_id, expected)

    async def abort(conn: AsyncConnection) -> Outcome:
        return await rollouts.abort(conn, realm_id, ACTOR, directive_id, expected, reason="guard")

    results = await _race(pg_db, realm_id, [promote, abort] * (WRITERS // 2))
    won = [r for r in results if isinstance(r, Outcome)]
    assert len(won) == 1
    assert all(isinstance(r, StaleRevision | NotFound) for r in results if r not in won)
    async with pg_db.transaction(realm_id) as conn:
        now = await directives.get(conn, realm_id, directive_id)
    assert now.rollout is None
    assert now.revision == expected.revision + 1
    assert now.active_version == won[0].directive.active_version


async def test_outcomes_are_realm_scoped(pg_db: Database) -> None:
    """Row-level security on `rollout_outcomes`: another realm, or none, sees and writes none."""
    mine, directive_id, _ = await _drafted(pg_db)
    other, _, _ = await _drafted(pg_db)
    row = NewOutcome(
        rollout_id="rol_x",
        id="out_1",
        directive_id=directive_id,
        arm="control",
        metric="m",
        value=1.0,
        agent_id="a",
        composition_id="cmp_" + "2" * 64,
        created_at=utcnow(),
    )
    async with pg_db.transaction(mine) as conn:
        await store_rollouts.add_outcomes(conn, mine, [row])
    counted = select(func.count()).select_from(rollout_outcomes)
    async with pg_db.transaction(mine) as conn:
        assert await conn.scalar(counted) == 1
    for realm_id in (other, None):
        async with pg_db.transaction(realm_id) as conn:
            assert await conn.scalar(counted) == 0
    with pytest.raises(DBAPIError, match="row-level security"):
        async with pg_db.transaction(other) as conn:
            await store_rollouts.add_outcomes(conn, mine, [row])
