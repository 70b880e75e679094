"""Real processes on loopback: `charter serve` subprocesses, and a redis-server of our own.

Every process a fixture starts is stopped in its `finally`, even when the test fails.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.api import new_realm_id
from tests.support.redis import SHARED_REDIS_URL, OwnRedis
from tests.support.servers import CharterServer, StartServer, charter_env


@pytest.fixture(scope="module")
async def start_server(
    postgres_urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[StartServer]:
    """Starts `charter serve` processes on the test database; stops them all afterwards.

    Module-scoped: a server outlives one test, and every test works in a realm of its own.
    """
    _, app_url = postgres_urls
    logs = tmp_path_factory.mktemp("charter-logs")
    key = secrets.token_urlsafe(24)
    started: list[CharterServer] = []

    async def start(
        redis_url: str = SHARED_REDIS_URL,
        extra_env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> CharterServer:
        env = charter_env(database_url=app_url, redis_url=redis_url, bootstrap_key=key)
        env |= extra_env or {}
        server = CharterServer(env, logs / f"charter-{len(started)}.log", args=args)
        started.append(server)
        await server.astart()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
async def two_servers(start_server: StartServer) -> tuple[CharterServer, CharterServer]:
    """Two processes on the shared PostgreSQL database and the shared Redis."""
    a, b = await asyncio.gather(start_server(), start_server())
    return a, b


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    directory = tmp_path / "redis"
    directory.mkdir()
    redis = OwnRedis(directory)
    try:
        await redis.start()
        yield redis
    finally:
        redis.stop()


@pytest.fixture
def realm_id() -> str:
    return new_realm_id()
