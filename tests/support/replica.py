"""A streaming replica of an `OwnPostgres` cluster, on a spare loopback port.

`pg_basebackup -R` copies the primary and writes the standby settings; the replica then
replays the primary's WAL as it streams in. Tests pause replay (`pg_wal_replay_pause()`) to
make it lag, and kill it to make it dead. The primary's pg_hba (from `initdb -A trust`)
already lets 127.0.0.1 replicate; the replica's files live in the primary's directory, so
`OwnPostgres.destroy` removes them too.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.ports import free_port
from tests.support.postgres import DATABASE, OwnPostgres

REPLAY_SECONDS = 15.0


class OwnReplica:
    def __init__(self, primary: OwnPostgres) -> None:
        self.primary = primary
        self.port = free_port()
        self.data = primary.root / f"replica-{self.port}"
        self.log = primary.root / f"replica-{self.port}.log"

    def url(self, role: str, database: str = DATABASE) -> str:
        return f"postgresql+asyncpg://{role}@127.0.0.1:{self.port}/{database}"

    @property
    def app_url(self) -> str:
        return self.url("charter_app")

    async def create(self) -> None:
        p = self.primary
        await p._run(
            "pg_basebackup",
            *("-D", str(self.data), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
            *("-h", "127.0.0.1", "-p", str(p.port), "-U", "postgres"),
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            # Queries on the replica are never cancelled for replay: a paused replay must not
            # turn into errors, only into lag.
            conf.write(f"\nport = {self.port}\nmax_standby_streaming_delay = -1\n")
        await self.start()

    async def start(self) -> None:
        await self.primary._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w")

    async def kill(self) -> None:
        """Stop it in immediate mode (every process quits at once, no shutdown checkpoint:
        as a crash), so connections to it are refused from now on."""
        if (self.data / "postmaster.pid").exists():
            stop = ("stop", "-D", str(self.data), "-m", "immediate", "-w")
            await self.primary._run("pg_ctl", *stop, check=False)

    async def _superuser(self, statement: str) -> object:
        engine = create_async_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                return (await conn.execute(text(statement))).scalar()
        finally:
            await engine.dispose()

    async def pause(self) -> None:
        await self._superuser("SELECT pg_wal_replay_pause()")

    async def resume(self) -> None:
        await self._superuser("SELECT pg_wal_replay_resume()")

    async def caught_up(self) -> float:
        """Wait until the replica has replayed everything the primary has written so far;
        the seconds that took (after the primary's LSN was read)."""
        engine = create_async_engine(self.primary.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                target = (await conn.execute(text("SELECT pg_current_wal_lsn()::text"))).scalar()
        finally:
            await engine.dispose()
        started = time.monotonic()
        deadline = started + REPLAY_SECONDS
        while time.monotonic() < deadline:
            behind = await self._superuser(f"SELECT pg_last_wal_replay_lsn() < '{target}'::pg_lsn")
            if behind is False:
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        pytest.fail(f"the replica did not replay up to {target} in {REPLAY_SECONDS} s")
