"""Row-level security on the new tables (0012): timers are read across realms and written only
for the named realm; claims and schedules are isolated like directives."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from charter.clock import utcnow
from charter.db.session import Database
from charter.store import realms, timers
from charter.store.timers import Timer
from tests.support.api import new_realm_id


async def _realm(db: Database) -> str:
    realm_id = new_realm_id()
    async with db.transaction(realm_id) as conn:
        await realms.create(conn, realm_id, "timers", utcnow())
    return realm_id


async def test_timers_are_seen_by_every_realm_and_written_only_by_their_own(
    pg_db: Database,
) -> None:
    mine, other = await _realm(pg_db), await _realm(pg_db)
    due = utcnow()
    async with pg_db.transaction(mine) as conn:
        await timers.add(conn, mine, Timer("clm_isolation" + mine[-8:], timers.CLAIM, due))
    async with pg_db.transaction() as conn:  # the due-work loop's view: no realm named
        assert mine in await timers.due_realms(conn, utcnow(), 10_000)
    async with pg_db.transaction(other) as conn:
        moved = "UPDATE timers SET due_at = now() + interval '1 day' WHERE realm_id = :mine"
        assert (await conn.execute(text(moved), {"mine": mine})).rowcount == 0
        gone = "DELETE FROM timers WHERE realm_id = :mine"
        assert (await conn.execute(text(gone), {"mine": mine})).rowcount == 0
    forged = "INSERT INTO timers (realm_id, id, kind, due_at) VALUES (:mine, 'x', 'claim', now())"
    with pytest.raises(DBAPIError) as raised:
        async with pg_db.transaction(other) as conn:
            await conn.execute(text(forged), {"mine": mine})
    assert "row-level security" in str(raised.value.orig)


@pytest.mark.parametrize("table", ["claims", "schedules"])
async def test_claims_and_schedules_are_realm_scoped(pg_db: Database, table: str) -> None:
    mine = await _realm(pg_db)
    async with pg_db.transaction(mine) as conn:
        query = f"SELECT count(*) FROM {table} WHERE realm_id <> :mine"  # noqa: S608
        assert await conn.scalar(text(query), {"mine": mine}) == 0
    async with pg_db.transaction() as conn:
        assert await conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0  # noqa: S608
