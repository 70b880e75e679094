"""A PostgreSQL cluster of our own on a spare loopback port, which a test may stop and start.

initdb refuses to run as root, so as root every server binary runs as the `postgres` OS user,
in a temporary directory that user owns, with the unix socket inside it: nothing is left
behind system-wide once `destroy` has run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.ports import free_port
from tests.support.servers import charter_env

DATABASE = "charter"
COMMAND_SECONDS = 60.0
# The tests kill processes, never the machine: the OS keeps every write a process has made,
# so fsync only costs time here (synchronous_commit stays on: a commit is written at once).
SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{root}'
fsync = off
max_connections = 100
logging_collector = off
"""


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parent)
    if not found:
        pytest.fail("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return found[-1].parent


class OwnPostgres:
    """initdb, start, stop (in any mode), and the roles and schema Charter needs."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="charter-faults-pg-"))
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def url(self, role: str, database: str = DATABASE) -> str:
        return f"postgresql+asyncpg://{role}@127.0.0.1:{self.port}/{database}"

    @property
    def owner_url(self) -> str:
        return self.url("charter_owner")

    @property
    def app_url(self) -> str:
        return self.url("charter_app")

    async def _run(self, tool: str, *args: str, check: bool = True) -> str:
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.root,
        )
        out, _ = await asyncio.wait_for(process.communicate(), COMMAND_SECONDS)
        if check and process.returncode != 0:
            pytest.fail(f"{tool} {' '.join(args)} failed:\n{out.decode(errors='replace')}")
        return out.decode(errors="replace")

    async def create(self) -> None:
        """A new cluster, started, with the owner role, the database and the schema at head."""
        await self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(port=self.port, root=self.root))
        await self.start()
        await self._roles()
        await self._migrate()

    async def start(self) -> None:
        await self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w")

    async def stop(self, mode: str = "fast") -> None:
        await self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w")

    async def running(self) -> bool:
        command = [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        process = await asyncio.create_subprocess_exec(*command)
        return await asyncio.wait_for(process.wait(), COMMAND_SECONDS) == 0

    async def _roles(self) -> None:
        # What scripts/services does on the shared server: an owner that is no superuser and
        # cannot bypass row-level security; `charter migrate` then makes the app role.
        engine = create_async_engine(self.url("postgres", "postgres"), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(
                    text("CREATE ROLE charter_owner LOGIN NOSUPERUSER NOBYPASSRLS CREATEROLE")
                )
                await conn.execute(text(f"CREATE DATABASE {DATABASE} OWNER charter_owner"))
        finally:
            await engine.dispose()
        engine = create_async_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text("ALTER SCHEMA public OWNER TO charter_owner"))
        finally:
            await engine.dispose()

    async def _migrate(self) -> None:
        env = charter_env(admin_database_url=self.owner_url, database_url=self.app_url)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "charter",
            "migrate",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), COMMAND_SECONDS)
        if process.returncode != 0:
            pytest.fail(f"charter migrate failed:\n{out.decode(errors='replace')}")

    async def destroy(self) -> None:
        """Stop the server however it is, and remove every file the cluster had."""
        try:
            if (self.data / "postmaster.pid").exists():
                stop = ("stop", "-D", str(self.data), "-m", "immediate", "-w")
                await self._run("pg_ctl", *stop, check=False)
        finally:
            self._kill_leftover()
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftover(self) -> None:
        """If pg_ctl could not stop it, the postmaster's pid file still names it."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
