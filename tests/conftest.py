"""Test fixtures: real PostgreSQL (as the app role, under row-level security) and SQLite.

`scripts/test` makes the PostgreSQL database and exports its URLs; the schema is migrated
once per session with Alembic, so the migrations are what the tests run on. Each test works
in a realm of its own, so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from charter.app import create_app
from charter.db.migrate import migrate
from charter.db.session import Database
from charter.settings import Settings

BACKENDS = ["postgres", "sqlite"]
# Accepted as an admin key by every app the tests build (CHARTER_BOOTSTRAP_KEY).
ADMIN_KEY = "chk_test-admin-key"


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
        redis_url = os.environ.get("CHARTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        return Settings(
            database_url=app_url,
            redis_url=redis_url,
            heartbeat_seconds=1.0,
            bootstrap_key=ADMIN_KEY,
            rate_limit_per_second=0,
        )
    return Settings(
        database_url=request.getfixturevalue("sqlite_url"),
        heartbeat_seconds=1.0,
        bootstrap_key=ADMIN_KEY,
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
    return create_app(settings)


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


def new_realm_id() -> str:
    return "t-" + uuid.uuid4().hex[:20]


@pytest.fixture
async def realm(client: AsyncTestClient[Litestar]) -> str:
    realm_id = new_realm_id()
    response = await client.post("/v1/realms", json={"id": realm_id})
    assert response.status_code == 201, response.text
    return realm_id


class Api:
    """Small request helpers for one realm, so tests read as the behaviour they check."""

    def __init__(self, client: AsyncTestClient[Litestar], realm_id: str) -> None:
        self.client = client
        self.realm = realm_id
        self.base = f"/v1/realms/{realm_id}/directives"

    async def create(self, **fields: Any) -> dict[str, Any]:
        body = {"level": "realm", "title": "Title", "body": "Body", **fields}
        response = await self.client.post(self.base, json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def child(
        self, parent: dict[str, Any], level: str = "team", **fields: Any
    ) -> dict[str, Any]:
        return await self.create(level=level, parent_id=parent["id"], **fields)

    async def get(self, directive_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{self.base}/{directive_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def patch(self, node: dict[str, Any], expect: int = 200, **fields: Any) -> dict[str, Any]:
        response = await self.client.patch(
            f"{self.base}/{node['id']}",
            json=fields,
            headers={"If-Match": f'"{node["revision"]}"'},
        )
        assert response.status_code == expect, response.text
        result: dict[str, Any] = response.json()
        return result

    async def events(self, after: int = 0) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/v1/realms/{self.realm}/events", params={"after": after, "limit": 500}
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture
def api(client: AsyncTestClient[Litestar], realm: str) -> Api:
    return Api(client, realm)
