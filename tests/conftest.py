"""Test fixtures: real PostgreSQL (as the app role, under row-level security) and SQLite.

`scripts/test` makes the PostgreSQL database and exports its URLs; the schema is migrated
once per session with Alembic, so the migrations are what the tests run on. Each test works
in a realm of its own, so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from charter.app import create_app
from charter.db.migrate import migrate
from charter.db.session import Database
from charter.settings import Settings
from tests.support.api import ADMIN_KEY, Api, new_realm_id
from tests.support.redis import SHARED_REDIS_URL

BACKENDS = ["postgres", "sqlite"]


@pytest.fixture(scope="session")
def postgres_urls() -> tuple[str, str]:
    admin = os.environ.get("CHARTER_TEST_ADMIN_URL")
    app = os.environ.get("CHARTER_TEST_DATABASE_URL")
    if not admin or not app:
        pytest.fail("run the suite with scripts/test: it creates the test database")
    migrate(admin, app)
    return admin, app


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "charter.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate(url, url)
    return url


def _settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    if backend == "postgres":
        _, app_url = request.getfixturevalue("postgres_urls")
        return Settings(
            database_url=app_url,
            redis_url=SHARED_REDIS_URL,
            heartbeat_seconds=1.0,
            bootstrap_key=ADMIN_KEY,
            rate_limit_per_second=0,
            webhook_allow_private=True,  # the tests' receivers listen on loopback
        )
    return Settings(
        database_url=request.getfixturevalue("sqlite_url"),
        heartbeat_seconds=1.0,
        bootstrap_key=ADMIN_KEY,
        webhook_allow_private=True,
    )


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    return _settings(backend, request)


@pytest.fixture(scope="session")
def app(settings: Settings) -> Litestar:
    # Delivery runs in the server processes that tests/live/test_webhook_delivery.py starts,
    # with settings of their own (a short retry horizon, loopback allowed): a deliverer here
    # would compete with them for their webhooks on the same database.
    return create_app(settings, deliver_webhooks=False)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        # A new process trusts Redis only after its first relay pass, which drops every prompt
        # entry there: let that happen before the tests, not in the middle of one.
        tier = app.state.runtime.prompts.tier
        deadline = time.monotonic() + 30
        while tier is not None and tier.recovering:
            assert time.monotonic() < deadline, "the first relay pass did not complete"
            await asyncio.sleep(0.01)
        yield test_client


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database.connect(settings.database_url, pool_size=20)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
async def pg_db(postgres_urls: tuple[str, str]) -> AsyncIterator[Database]:
    """The app role on PostgreSQL, whatever the backend parameter: for races and RLS."""
    database = Database.connect(postgres_urls[1], pool_size=40)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
async def pg_admin_db(postgres_urls: tuple[str, str]) -> AsyncIterator[Database]:
    """The schema owner: for writing corrupt rows straight into the tables."""
    database = Database.connect(postgres_urls[0], pool_size=4)
    yield database
    await database.dispose()


@pytest.fixture
async def realm(client: AsyncTestClient[Litestar]) -> str:
    realm_id = new_realm_id()
    response = await client.post("/v1/realms", json={"id": realm_id})
    assert response.status_code == 201, response.text
    return realm_id


@pytest.fixture
def api(client: AsyncTestClient[Litestar], realm: str) -> Api:
    return Api(client, realm)
