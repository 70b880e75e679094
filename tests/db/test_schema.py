"""The Alembic history and `charter.db.tables` describe the same schema."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from charter.db.session import Database
from charter.db.tables import metadata


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_postgres_matches_the_tables_module(pg_admin_db: Database) -> None:
    async with pg_admin_db.engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == []


async def test_migrated_sqlite_matches_the_tables_module(sqlite_url: str) -> None:
    db = Database.connect(sqlite_url)
    try:
        async with db.engine.connect() as conn:
            differences = await conn.run_sync(_differences)
    finally:
        await db.dispose()
    assert differences == []
