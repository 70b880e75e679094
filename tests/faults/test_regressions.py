"""Two 500s the PostgreSQL outage run found, pinned down without an outage.

1. A connection that died inside a write: the write's own bookkeeping touched the invalidated
   connection afterwards, and SQLAlchemy's PendingRollbackError replaced the error that says
   the database went away.
2. Errors asyncpg raises while connecting ("the database system is starting up", too many
   connections) come unwrapped, and were not recognised as the database being unavailable.
"""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from charter.app import create_app
from charter.db.migrate import grant_app_role
from charter.runtime import open_runtime
from charter.settings import Settings
from tests.support.postgres import OwnPostgres

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]

KEY = "chk_faults-admin-key"
LIMITED_ROLE = "charter_app_limited"


async def _as_superuser(cluster: OwnPostgres, statement: str, **values: object) -> None:
    engine = create_async_engine(cluster.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement), values)
    finally:
        await engine.dispose()


async def _write_on_a_connection_that_dies(cluster: OwnPostgres) -> None:
    settings = Settings(database_url=cluster.app_url)
    async with open_runtime(settings) as runtime, runtime.write("") as conn:
        pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        await _as_superuser(cluster, "SELECT pg_terminate_backend(:pid)", pid=pid)
        await conn.execute(text("SELECT 1"))


async def test_a_write_whose_connection_dies_raises_the_database_error(
    cluster: OwnPostgres,
) -> None:
    with pytest.raises(DBAPIError) as raised:
        await _write_on_a_connection_that_dies(cluster)
    assert raised.value.connection_invalidated


async def _refusing_url(cluster: OwnPostgres) -> str:
    """An app role the server turns away at connect time (SQLSTATE 53300)."""
    url = cluster.url(LIMITED_ROLE)
    await grant_app_role(cluster.owner_url, url)
    await _as_superuser(cluster, f"ALTER ROLE {LIMITED_ROLE} CONNECTION LIMIT 0")
    return url


async def test_a_database_refusing_connections_is_a_503_with_retry_after(
    cluster: OwnPostgres,
) -> None:
    url = await _refusing_url(cluster)
    settings = Settings(database_url=url, bootstrap_key=KEY, rate_limit_per_second=0)
    async with AsyncTestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {KEY}"
        response = await client.get("/v1/realms/anything")
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "unavailable"
    assert response.headers["retry-after"]
