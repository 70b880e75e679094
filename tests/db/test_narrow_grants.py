"""The app role cannot escalate (DESIGN §12, migration 0008): tried as the app role itself.

(And the table of migration 0009 is realm-scoped like the others.)

Keys are made and revoked, never changed; realm rows change only by their revision, only in a
transaction that names the realm, never downwards. Each statement below is what SQL run as the
app role (an injection, a compromised process) would try.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from charter.clock import utcnow
from charter.db.session import Database
from charter.domain.access import Role
from charter.domain.tree import InjectionMode
from charter.services.keys import mint
from charter.store import compositions, realms
from tests.support.api import new_realm_id


async def _realm(db: Database) -> str:
    realm_id = new_realm_id()
    async with db.transaction(realm_id) as conn:
        await realms.create(conn, realm_id, "grants", utcnow())
    return realm_id


async def _reader_key(db: Database, realm_id: str) -> str:
    async with db.transaction() as conn:
        key, _ = await mint(conn, Role.READER, [realm_id], name="grants")
    return key.id


async def _row(db: Database, query: str, **values: Any) -> dict[str, Any]:
    async with db.transaction() as conn:
        return dict((await conn.execute(text(query), values)).mappings().one())


async def _refused(db: Database, realm_id: str, statement: str, **values: Any) -> str:
    with pytest.raises(DBAPIError) as raised:
        async with db.transaction(realm_id) as conn:
            await conn.execute(text(statement), values)
    return str(raised.value.orig)


KEY_ESCALATIONS = [
    "UPDATE api_keys SET role = 'admin' WHERE id = :id",
    """UPDATE api_keys SET realms = '["*"]' WHERE id = :id""",
    "UPDATE api_keys SET role = 'admin', realms = '[\"*\"]' WHERE id = :id",
    "UPDATE api_keys SET secret_hash = repeat('0', 64) WHERE id = :id",
    "UPDATE api_keys SET agent_id = 'someone-else' WHERE id = :id",
    "UPDATE api_keys SET name = 'renamed' WHERE id = :id",
    "DELETE FROM api_keys WHERE id = :id",
    "INSERT INTO api_keys (id, secret_hash, role, realms, created_at, revoked_at) "
    "VALUES ('key_forged', repeat('1', 64), 'admin', '[\"*\"]', now(), NULL)",
]


@pytest.mark.parametrize("statement", KEY_ESCALATIONS)
async def test_the_app_role_cannot_change_a_key(pg_db: Database, statement: str) -> None:
    realm_id = await _realm(pg_db)
    key_id = await _reader_key(pg_db, realm_id)
    before = await _row(pg_db, "SELECT * FROM api_keys WHERE id = :id", id=key_id)
    message = await _refused(pg_db, realm_id, statement, id=key_id)
    assert "permission denied" in message
    after = await _row(pg_db, "SELECT * FROM api_keys WHERE id = :id", id=key_id)
    assert after == before
    assert after["role"] == "reader"
    assert after["realms"] == [realm_id]


async def test_a_revocation_is_final_even_for_the_owner(
    pg_db: Database, pg_admin_db: Database
) -> None:
    realm_id = await _realm(pg_db)
    key_id = await _reader_key(pg_db, realm_id)
    revoke = "UPDATE api_keys SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL"
    async with pg_db.transaction() as conn:  # what the app does: allowed
        assert (await conn.execute(text(revoke), {"id": key_id})).rowcount == 1
    for db in (pg_db, pg_admin_db):
        for statement in (
            "UPDATE api_keys SET revoked_at = NULL WHERE id = :id",
            "UPDATE api_keys SET revoked_at = now() + interval '1 day' WHERE id = :id",
        ):
            assert "revoked" in await _refused(db, realm_id, statement, id=key_id)
    row = await _row(pg_db, "SELECT revoked_at FROM api_keys WHERE id = :id", id=key_id)
    assert row["revoked_at"] is not None


async def test_not_even_the_owner_changes_a_keys_role_or_realms(pg_admin_db: Database) -> None:
    realm_id = await _realm(pg_admin_db)
    key_id = await _reader_key(pg_admin_db, realm_id)
    for statement in KEY_ESCALATIONS[:3]:
        assert "revoked" in await _refused(pg_admin_db, realm_id, statement, id=key_id)


REALM_ESCALATIONS = [
    "UPDATE realms SET name = 'taken over' WHERE id = :other",
    "UPDATE realms SET created_at = now() WHERE id = :other",
    "UPDATE realms SET id = 'stolen' WHERE id = :other",
    "DELETE FROM realms WHERE id = :other",
    "INSERT INTO realms (id, name, revision, created_at) VALUES ('t-forged', 'x', 99, now())",
]


@pytest.mark.parametrize("statement", REALM_ESCALATIONS)
async def test_the_app_role_cannot_rewrite_a_realm_row(pg_db: Database, statement: str) -> None:
    mine, other = await _realm(pg_db), await _realm(pg_db)
    before = await _row(pg_db, "SELECT * FROM realms WHERE id = :id", id=other)
    assert "permission denied" in await _refused(pg_db, mine, statement, other=other)
    assert await _row(pg_db, "SELECT * FROM realms WHERE id = :id", id=other) == before


async def test_another_realms_revision_is_out_of_reach(pg_db: Database) -> None:
    mine, other = await _realm(pg_db), await _realm(pg_db)
    async with pg_db.transaction(other) as conn:
        await realms.advance(conn, other, 5, utcnow())
    for statement in (
        "UPDATE realms SET revision = 0 WHERE id = :other",
        "UPDATE realms SET revision = revision + 1000 WHERE id = :other",
        "UPDATE realms SET revision = revision + 1",  # every realm at once
    ):
        async with pg_db.transaction(mine) as conn:
            changed = (await conn.execute(text(statement), {"other": other})).rowcount
        assert changed <= 1  # at most its own realm's row
    row = await _row(pg_db, "SELECT revision FROM realms WHERE id = :id", id=other)
    assert row["revision"] == 5
    # Without any realm named, no realm row changes at all.
    async with pg_db.transaction() as conn:
        result = await conn.execute(text("UPDATE realms SET revision = revision + 1"))
        assert result.rowcount == 0


async def test_a_realm_revision_never_goes_down(pg_db: Database) -> None:
    realm_id = await _realm(pg_db)
    async with pg_db.transaction(realm_id) as conn:
        assert await realms.advance(conn, realm_id, 3, utcnow()) == 3
    statement = "UPDATE realms SET revision = 1 WHERE id = :id"
    assert "never goes down" in await _refused(pg_db, realm_id, statement, id=realm_id)
    row = await _row(pg_db, "SELECT revision FROM realms WHERE id = :id", id=realm_id)
    assert row["revision"] == 3


async def test_relay_cursors_are_written_only_for_the_named_realm(pg_db: Database) -> None:
    mine, other = await _realm(pg_db), await _realm(pg_db)
    insert = "INSERT INTO relay_cursors (realm_id, delivered_seq) VALUES (:other, 1000)"
    assert "row-level security" in await _refused(pg_db, mine, insert, other=other)
    async with pg_db.transaction(other) as conn:
        await conn.execute(text(insert), {"other": other})
    async with pg_db.transaction(mine) as conn:
        skip = "UPDATE relay_cursors SET delivered_seq = 1000000000 WHERE realm_id = :other"
        assert (await conn.execute(text(skip), {"other": other})).rowcount == 0
    seq = "SELECT delivered_seq FROM relay_cursors WHERE realm_id = :id"
    assert (await _row(pg_db, seq, id=other))["delivered_seq"] == 1000


async def test_what_the_app_needs_still_works(pg_db: Database) -> None:
    realm_id = await _realm(pg_db)
    async with pg_db.transaction(realm_id) as conn:
        now = await realms.lock(conn, realm_id)  # the realm's clock: UPDATE (clock) granted
        assert await realms.advance(conn, realm_id, 2, now) == 2
    key_id = await _reader_key(pg_db, realm_id)
    async with pg_db.transaction() as conn:
        revoke = "UPDATE api_keys SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL"
        assert (await conn.execute(text(revoke), {"id": key_id})).rowcount == 1


async def test_composition_agents_are_realm_scoped(pg_db: Database) -> None:
    mine, other = await _realm(pg_db), await _realm(pg_db)
    record = compositions.Record(
        id="cmp_" + "1" * 64,
        agent_id="alpha",
        renderer_version=1,
        injection_mode=InjectionMode.SYSTEM_FIRST,
        layers=[],
        created_at=utcnow(),
    )
    async with pg_db.transaction(mine) as conn:
        await compositions.record(conn, mine, record)
    counted = "SELECT count(*) AS n FROM composition_agents WHERE composition_id = :id"
    async with pg_db.transaction(mine) as conn:
        assert await conn.scalar(text(counted), {"id": record.id}) == 1
    for realm_id in (other, None):
        async with pg_db.transaction(realm_id) as conn:
            assert await conn.scalar(text(counted), {"id": record.id}) == 0
    forged = (
        "INSERT INTO composition_agents (realm_id, composition_id, agent_id) "
        "VALUES (:realm, :id, 'intruder')"
    )
    message = await _refused(pg_db, other, forged, realm=mine, id=record.id)
    assert "row-level security" in message
