"""PostgreSQL's defence in depth: the immutable-versions trigger, row-level security, the app
role's grants, and the body-size check constraint, each tried straight against the tables."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from charter.clock import utcnow
from charter.db.session import Database
from charter.db.tables import directive_versions, directives, events
from charter.domain.tree import Level
from charter.domain.versions import MAX_BODY_BYTES, content_hash
from charter.services import writes
from charter.services.writes import Actor, NewDirective
from charter.store import realms
from tests.support.api import new_realm_id

ACTOR = Actor(key_id="guards")
# The tables a directive write fills, so each has rows of two realms to keep apart.
TABLES = {"directives": directives, "directive_versions": directive_versions, "events": events}


async def _realm_with_a_directive(db: Database) -> tuple[str, str]:
    realm_id = new_realm_id()
    async with db.transaction(realm_id) as conn:
        await realms.create(conn, realm_id, "guards", utcnow())
        created = await writes.create(
            conn, realm_id, ACTOR, NewDirective(Level.REALM, "Title", "Body"), 16
        )
    return realm_id, created.id


def _version_row(realm_id: str, directive_id: str, number: int, body: str) -> dict[str, Any]:
    return {
        "realm_id": realm_id,
        "directive_id": directive_id,
        "version": number,
        "title": "Title",
        "body": body,
        "content_hash": content_hash("Title", body),
        "author": "guards",
        "created_at": utcnow(),
    }


async def test_the_versions_trigger_refuses_update_even_for_the_owner(
    pg_db: Database, pg_admin_db: Database
) -> None:
    realm_id, node = await _realm_with_a_directive(pg_db)
    v = directive_versions
    # RLS is FORCEd, so the owner too must name the realm, or the UPDATE would match no row
    # and a row trigger would never fire.
    with pytest.raises(DBAPIError, match="immutable"):
        async with pg_admin_db.transaction(realm_id) as conn:
            await conn.execute(
                update(v).where(v.c.realm_id == realm_id, v.c.directive_id == node).values(body="x")
            )
    async with pg_db.transaction(realm_id) as conn:
        body = await conn.scalar(select(v.c.body).where(v.c.directive_id == node))
    assert body == "Body"


async def test_the_versions_trigger_refuses_delete_even_for_the_owner(
    pg_db: Database, pg_admin_db: Database
) -> None:
    realm_id, node = await _realm_with_a_directive(pg_db)
    v = directive_versions
    with pytest.raises(DBAPIError, match="immutable"):
        async with pg_admin_db.transaction(realm_id) as conn:
            await conn.execute(delete(v).where(v.c.realm_id == realm_id, v.c.directive_id == node))
    async with pg_db.transaction(realm_id) as conn:
        count = await conn.scalar(select(func.count()).where(v.c.directive_id == node))
    assert count == 1


@pytest.mark.parametrize("table", sorted(TABLES))
async def test_the_app_role_sees_no_rows_without_a_realm(pg_db: Database, table: str) -> None:
    await _realm_with_a_directive(pg_db)  # so there is at least one row to hide
    counted = select(func.count()).select_from(TABLES[table])
    async with pg_db.transaction() as conn:  # the setting made empty
        assert await conn.scalar(counted) == 0
    async with pg_db.engine.connect() as conn:  # the setting never made at all
        assert await conn.scalar(counted) == 0
        await conn.rollback()


@pytest.mark.parametrize("table", sorted(TABLES))
async def test_the_app_role_sees_only_its_realms_rows(pg_db: Database, table: str) -> None:
    realm_a, _ = await _realm_with_a_directive(pg_db)
    realm_b, _ = await _realm_with_a_directive(pg_db)
    t = TABLES[table]
    async with pg_db.transaction(realm_a) as conn:
        seen = set((await conn.execute(select(t.c.realm_id).distinct())).scalars())
        asked_for_b = await conn.scalar(
            select(func.count()).select_from(t).where(t.c.realm_id == realm_b)
        )
    assert seen == {realm_a}
    assert asked_for_b == 0


async def test_the_app_role_cannot_write_into_another_realm(pg_db: Database) -> None:
    realm_a, _ = await _realm_with_a_directive(pg_db)
    realm_b, node_b = await _realm_with_a_directive(pg_db)
    with pytest.raises(DBAPIError, match="row-level security"):
        async with pg_db.transaction(realm_a) as conn:
            await conn.execute(
                insert(directive_versions).values(**_version_row(realm_b, node_b, 2, "Sneaky"))
            )


async def test_the_app_role_cannot_update_or_delete_versions(pg_db: Database) -> None:
    realm_id, node = await _realm_with_a_directive(pg_db)
    v = directive_versions
    with pytest.raises(DBAPIError, match="permission denied"):
        async with pg_db.transaction(realm_id) as conn:
            await conn.execute(update(v).where(v.c.directive_id == node).values(body="x"))
    with pytest.raises(DBAPIError, match="permission denied"):
        async with pg_db.transaction(realm_id) as conn:
            await conn.execute(delete(v).where(v.c.directive_id == node))


async def test_the_app_role_owns_no_table_and_cannot_bypass_rls(pg_db: Database) -> None:
    async with pg_db.engine.connect() as conn:
        bypass = await conn.scalar(
            text("SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user")
        )
        owned = await conn.scalar(
            text("SELECT count(*) FROM pg_tables WHERE tableowner = current_user")
        )
        await conn.rollback()
    assert bypass is False
    assert owned == 0


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ("a" * MAX_BODY_BYTES, True),
        ("a" * (MAX_BODY_BYTES + 1), False),
        ("€" * (MAX_BODY_BYTES // 3), True),  # 10 922 characters, 32 766 bytes
        ("€" * (MAX_BODY_BYTES // 3 + 1), False),  # 10 923 characters, 32 769 bytes
    ],
    ids=["32768-ascii", "32769-ascii", "32766-bytes-wide", "32769-bytes-wide"],
)
async def test_the_check_constraint_limits_the_body_in_bytes(
    pg_db: Database, body: str, accepted: bool
) -> None:
    realm_id, node = await _realm_with_a_directive(pg_db)
    row = insert(directive_versions).values(**_version_row(realm_id, node, 2, body))
    if accepted:
        v = directive_versions
        async with pg_db.transaction(realm_id) as conn:
            await conn.execute(row)
            stored = await conn.scalar(
                select(func.octet_length(v.c.body)).where(
                    v.c.directive_id == node, v.c.version == 2
                )
            )
        assert stored == len(body.encode("utf-8"))
        return
    with pytest.raises(IntegrityError, match="ck_directive_versions_body_size"):
        async with pg_db.transaction(realm_id) as conn:
            await conn.execute(row)
