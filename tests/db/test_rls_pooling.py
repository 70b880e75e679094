"""Row-level security on a pooled connection: the realm setting never outlives its transaction.

One connection (pool_size=1, max_overflow=0) serves 10 000 transactions alternating between
two realms. Each reads directives and events with no WHERE clause of its own, so row-level
security alone decides what it sees: exactly its realm's rows, every time. Between them,
transactions with no realm, and statements that never set one, see nothing at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from charter.clock import utcnow
from charter.db.session import Database
from charter.db.tables import directives, events
from charter.domain.tree import Level
from charter.services import writes
from charter.services.writes import Actor, NewDirective
from charter.store import realms
from tests.support.api import new_realm_id

TRANSACTIONS = 10_000
NO_REALM_EVERY = 100  # between these, a transaction and a bare statement with no realm set

# Every row either table holds that the session may see: RLS is the only filter.
VISIBLE = union_all(
    select(literal("directive").label("kind"), directives.c.realm_id),
    select(literal("event").label("kind"), events.c.realm_id),
)
SETTING = select(func.current_setting("charter.realm", True), func.pg_backend_pid())


@dataclass(frozen=True)
class Seeded:
    realm_id: str
    directives: int

    @property
    def rows(self) -> int:
        return 2 * self.directives  # each create writes one directive row and one event


async def _seed(db: Database, count: int) -> Seeded:
    realm_id = new_realm_id()
    actor = Actor(key_id="rls-pooling")
    async with db.transaction(realm_id) as conn:
        await realms.create(conn, realm_id, "rls pooling", utcnow())
        for n in range(count):
            new = NewDirective(Level.REALM, f"Title {n}", f"Body {n}")
            await writes.create(conn, realm_id, actor, new, 16)
    return Seeded(realm_id, count)


@pytest.fixture
async def one_connection(postgres_urls: tuple[str, str]) -> AsyncIterator[Database]:
    """The app role through a pool that can hold exactly one connection."""
    engine = create_async_engine(
        postgres_urls[1], pool_size=1, max_overflow=0, pool_timeout=5, hide_parameters=True
    )
    database = Database(engine)
    yield database
    await database.dispose()


async def _visible(conn: AsyncConnection) -> list[tuple[str, str]]:
    return [(row.kind, row.realm_id) for row in await conn.execute(VISIBLE)]


async def _backend_pid(conn: AsyncConnection) -> int:
    pid = await conn.scalar(select(func.pg_backend_pid()))
    assert isinstance(pid, int)
    return pid


async def test_ten_thousand_alternating_transactions_on_one_connection_never_leak(
    pg_db: Database, one_connection: Database
) -> None:
    a, b = await _seed(pg_db, 3), await _seed(pg_db, 5)
    db = one_connection
    async with db.transaction() as conn:
        pid = await _backend_pid(conn)

    for i in range(TRANSACTIONS):
        realm = a if i % 2 == 0 else b
        async with db.transaction(realm.realm_id) as conn:
            seen = await _visible(conn)
        assert len(seen) == realm.rows, (i, realm.realm_id, len(seen))
        assert {realm_id for _, realm_id in seen} == {realm.realm_id}, i
        assert [kind for kind, _ in seen].count("event") == realm.directives, i

        if i % NO_REALM_EVERY == NO_REALM_EVERY - 1:
            # Right after a realm's transaction, on the same connection: nothing carries over.
            async with db.transaction() as conn:
                assert await _visible(conn) == [], i
            async with db.engine.connect() as conn:  # no set_config at all
                setting, same_pid = (await conn.execute(SETTING)).one()
                assert setting in ("", None), (i, setting)
                assert same_pid == pid, "the pool opened a second connection"
                assert await _visible(conn) == [], i
                await conn.rollback()


async def test_a_rolled_back_realm_transaction_leaves_nothing_behind(
    pg_db: Database, one_connection: Database
) -> None:
    realm = await _seed(pg_db, 2)
    db = one_connection

    class Abandon(Exception):
        pass

    async def read_then_fail() -> None:
        async with db.transaction(realm.realm_id) as conn:
            assert len(await _visible(conn)) == realm.rows
            raise Abandon

    with pytest.raises(Abandon):
        await read_then_fail()
    async with db.engine.connect() as conn:
        setting, _ = (await conn.execute(SETTING)).one()
        assert setting in ("", None)
        assert await _visible(conn) == []
        await conn.rollback()
    async with db.transaction() as conn:
        assert await _visible(conn) == []
