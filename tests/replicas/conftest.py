"""A PostgreSQL cluster of their own with one streaming replica, and an app reading from it.

initdb, migrations and the base backup take seconds: one cluster for the package.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from charter.app import create_app
from charter.settings import Settings
from tests.support.api import ADMIN_KEY, Api, new_realm_id
from tests.support.postgres import OwnPostgres
from tests.support.replica import OwnReplica


@pytest.fixture(scope="package")
async def primary() -> AsyncIterator[OwnPostgres]:
    postgres = OwnPostgres()
    try:
        await postgres.create()
        yield postgres
    finally:
        await postgres.destroy()


@pytest.fixture(scope="package")
async def replica(primary: OwnPostgres) -> AsyncIterator[OwnReplica]:
    standby = OwnReplica(primary)
    try:
        await standby.create()
        yield standby
    finally:
        await standby.kill()


@pytest.fixture
async def client(
    primary: OwnPostgres, replica: OwnReplica
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(
        database_url=primary.app_url,
        read_replica_urls=(replica.app_url,),
        bootstrap_key=ADMIN_KEY,
        rate_limit_per_second=0,
    )
    async with AsyncTestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield test_client


@pytest.fixture
async def api(client: AsyncTestClient[Litestar]) -> Api:
    realm_id = new_realm_id()
    response = await client.post("/v1/realms", json={"id": realm_id})
    assert response.status_code == 201, response.text
    return Api(client, realm_id)
