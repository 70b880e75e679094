"""Several processes never serve stale data: without Redis, `charter serve` runs alone.

Real `charter serve` commands: `--workers 2` without `CHARTER_REDIS_URL` is refused before
anything starts; a second server on a database that one without Redis already serves is
refused, and so is one without Redis beside servers that have it (db/serving_lock.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from charter.db.serving_lock import LOCK_KEY
from tests.support.ports import free_port
from tests.support.redis import SHARED_REDIS_URL
from tests.support.servers import CharterServer, stop_group, tail

REFUSAL_SECONDS = 60.0  # a refused start exits long before; a started server never does


def _env(database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    env |= {"CHARTER_DATABASE_URL": database_url, "CHARTER_BOOTSTRAP_KEY": "chk_single"}
    if redis_url is not None:
        env["CHARTER_REDIS_URL"] = redis_url
    return env


def _run_refused(env: dict[str, str], *extra: str) -> tuple[int, str]:
    """Run `charter serve`; it must exit by itself. Returns its exit code and output."""
    command = [sys.executable, "-m", "charter", "serve", "--port", str(free_port()), *extra]
    process = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=REFUSAL_SECONDS)
    except subprocess.TimeoutExpired:
        stop_group(process, first=signal.SIGTERM)
        output, _ = process.communicate()
        pytest.fail(f"charter serve {' '.join(extra)} started instead of refusing:\n{output!r}")
    return process.returncode, output.decode(errors="replace")


@pytest.fixture
def sqlite_file(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'alone.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, sqlite_file: str, postgres_urls: tuple[str, str]
) -> str:
    return sqlite_file if request.param == "sqlite" else postgres_urls[1]


def test_two_workers_without_redis_are_refused_with_the_fix(database_url: str) -> None:
    code, output = _run_refused(_env(database_url, None), "--workers", "2")
    assert code == 2, output
    assert "refusing to start 2 worker processes without CHARTER_REDIS_URL" in output
    assert "stale prompts" in output  # why
    assert "revoked keys" in output
    assert "Set CHARTER_REDIS_URL" in output  # how to fix it
    assert "--workers 1" in output


Running = Callable[[dict[str, str]], Awaitable[CharterServer]]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """Starts `charter serve` processes (until ready); stops them all afterwards."""
    started: list[CharterServer] = []

    async def start(env: dict[str, str]) -> CharterServer:
        server = CharterServer(env, tmp_path / f"serve-{len(started)}.log")
        started.append(server)
        await server.astart()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


async def test_a_second_server_without_redis_is_refused(
    database_url: str, running: Running
) -> None:
    first = await running(_env(database_url, None))
    code, output = _run_refused(_env(database_url, None))
    assert code == 2, output
    assert "other charter server processes are already serving this database" in output
    assert "Set CHARTER_REDIS_URL on every server process" in output
    assert first.process is not None
    assert first.process.poll() is None, tail(first.log)  # the first one serves on


async def test_a_server_with_redis_is_refused_beside_one_without(
    database_url: str, running: Running
) -> None:
    await running(_env(database_url, None))
    code, output = _run_refused(_env(database_url, SHARED_REDIS_URL))
    assert code == 2, output
    assert "a charter server without CHARTER_REDIS_URL is already serving this database" in output


async def test_one_without_redis_is_refused_beside_servers_with_it(
    database_url: str, running: Running
) -> None:
    # Two servers with Redis share the database happily; a third without it may not join.
    with_redis = _env(database_url, SHARED_REDIS_URL)
    await running(with_redis)
    await running(with_redis)
    code, output = _run_refused(_env(database_url, None))
    assert code == 2, output
    assert "other charter server processes are already serving this database" in output


async def test_the_lock_goes_with_the_server(database_url: str, running: Running) -> None:
    first = await running(_env(database_url, None))
    first.stop()
    second = await running(_env(database_url, None))
    assert second.process is not None
    assert second.process.poll() is None


# --- PostgreSQL: the lock's own connection drops -------------------------------------------

_HOLDER = text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid::bigint = :high AND objid::bigint = :low"
)
_KEY = {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFFFFFF}
EXIT_SECONDS = 30.0


@asynccontextmanager
async def _app_role(postgres_urls: tuple[str, str]) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(postgres_urls[1], poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")
    finally:
        await engine.dispose()


async def _cut_the_lock_connection(conn: AsyncConnection) -> int:
    """Terminate the backend that holds the serving lock, once it is gone; returns its pid."""
    pid = await conn.scalar(_HOLDER, _KEY)
    assert pid is not None, "no server holds the serving lock"
    assert await conn.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    return int(pid)


async def test_a_server_takes_its_lock_again_after_its_connection_drops(
    postgres_urls: tuple[str, str], running: Running
) -> None:
    first = await running(_env(postgres_urls[1], None))
    async with _app_role(postgres_urls) as conn:
        cut = await _cut_the_lock_connection(conn)
        deadline = time.monotonic() + EXIT_SECONDS
        while await conn.scalar(_HOLDER, _KEY) in (None, cut):  # taken again, on a new one
            assert time.monotonic() < deadline, "the server never took its lock again"
            await asyncio.sleep(0.05)
    code, output = _run_refused(_env(postgres_urls[1], None))
    assert code == 2, output
    assert first.process is not None
    assert first.process.poll() is None, tail(first.log)
    assert "the serving lock's connection failed" in first.log.read_text()


async def test_a_server_that_lost_its_lock_to_another_stops(
    postgres_urls: tuple[str, str], running: Running
) -> None:
    first = await running(_env(postgres_urls[1], None))
    async with _app_role(postgres_urls) as conn:
        await _cut_the_lock_connection(conn)
        # Take it before the server tries again (it waits a second after noticing the loss).
        deadline = time.monotonic() + 0.9
        while not await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}):
            assert time.monotonic() < deadline, "the lock never came free"
            await asyncio.sleep(0.005)
        assert first.process is not None
        try:
            first.process.wait(EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server kept serving without its lock:\n{tail(first.log)}")
        assert "lost the serving lock to another process; stopping" in first.log.read_text()
