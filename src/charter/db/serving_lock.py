"""One database, one server process without Redis: a lock `charter serve` holds while it runs.

Without `CHARTER_REDIS_URL` a process keeps its cache and its key checks to itself and hears
only its own changes, so a second process on the same database would serve stale prompts and
accept revoked keys. A process without Redis therefore holds the database's serving lock
exclusively, and a process with Redis holds it shared: two processes without Redis, or one
without and one with, cannot both start (docs/cache.md, "One process without Redis").

- PostgreSQL: a session-level advisory lock on a connection of its own (kept by a thread,
  since the ASGI server owns the main thread), so it goes when the process goes.
- SQLite: `flock` on `<database>.lock`, released when the process (and its workers, which
  inherit the descriptor) exit. An in-memory database needs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import threading
from collections.abc import Iterator

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from charter.db.preflight import PreflightFailed
from charter.settings import Settings

log = logging.getLogger("charter.serve")

# "charter\x01" as a big-endian bigint: one key for every Charter server of a database.
LOCK_KEY = int.from_bytes(b"charter\x01", "big")
_RETRY_SECONDS = 1.0
_TAKE_SECONDS = 90.0  # longer than a connection attempt may take (asyncpg: 60 s)

ALONE_ALREADY = (
    "a charter server without CHARTER_REDIS_URL is already serving this database, and it "
    "cannot hear another process's changes (it would serve stale prompts and accept revoked "
    "keys). Stop it, or give every server process the same CHARTER_REDIS_URL."
)
NOT_ALONE = (
    "other charter server processes are already serving this database, and without "
    "CHARTER_REDIS_URL this one could not hear their changes, nor they its own (stale prompts, "
    "revoked keys still accepted). Set CHARTER_REDIS_URL on every server process, or run "
    "only one."
)


@contextlib.contextmanager
def serving_lock(settings: Settings) -> Iterator[None]:
    """Hold the database's serving lock for the block; raises PreflightFailed if refused."""
    exclusive = settings.redis_url is None
    if settings.is_sqlite:
        with _file_lock(settings.database_url, exclusive):
            yield
        return
    holder = _PostgresHolder(settings.database_url, exclusive)
    holder.start()
    if not holder.taken.wait(_TAKE_SECONDS):
        raise PreflightFailed("timed out taking the serving lock on the database")
    if not holder.held:
        raise PreflightFailed(holder.refusal or "could not take the serving lock on the database")
    try:
        yield
    finally:
        holder.release()


@contextlib.contextmanager
def _file_lock(url: str, exclusive: bool) -> Iterator[None]:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    descriptor = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PreflightFailed(NOT_ALONE if exclusive else ALONE_ALREADY) from None
        yield
    finally:
        os.close(descriptor)  # the lock goes with the last descriptor


class _PostgresHolder(threading.Thread):
    """Takes the advisory lock, then keeps its connection (and so the lock) until released.

    If the connection drops, the lock went with it: the holder takes it again. Should another
    process have taken it meanwhile, this one can no longer be sure it hears every change, so
    it stops its own server (SIGTERM, a graceful shutdown) rather than serve stale data.
    """

    def __init__(self, url: str, exclusive: bool) -> None:
        super().__init__(name="charter-serving-lock", daemon=True)
        self.url = url
        self.exclusive = exclusive
        self.taken = threading.Event()  # set once `held` or `refusal` says how it went
        self.held = False
        self.refusal: str | None = None
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()
        self.join(timeout=_RETRY_SECONDS * 3)

    def run(self) -> None:
        try:
            asyncio.run(self._hold())
        finally:
            self.taken.set()  # never leave the starting thread waiting

    async def _hold(self) -> None:
        engine = create_async_engine(self.url, poolclass=NullPool)
        function = "pg_try_advisory_lock" if self.exclusive else "pg_try_advisory_lock_shared"
        try:
            while not self._released.is_set():
                try:
                    async with engine.connect() as conn:
                        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                        got = await auto.scalar(text(f"SELECT {function}(:key)"), {"key": LOCK_KEY})
                        if not got:
                            self._refused()
                            return
                        self.held = True
                        self.taken.set()
                        while not self._released.is_set():
                            await asyncio.sleep(_RETRY_SECONDS)
                            await auto.scalar(text("SELECT 1"))  # a dropped connection shows
                    return  # released: closing the connection let the lock go
                except Exception as exc:  # the holder never gives up silently
                    if not self.taken.is_set():
                        self.refusal = f"cannot take the serving lock on the database: {exc}"
                        return
                    log.warning("the serving lock's connection failed (%s)", type(exc).__name__)
                    await asyncio.sleep(_RETRY_SECONDS)
        finally:
            await engine.dispose()

    def _refused(self) -> None:
        message = NOT_ALONE if self.exclusive else ALONE_ALREADY
        if not self.taken.is_set():
            self.refusal = message
            return
        log.error("lost the serving lock to another process; stopping: %s", message)
        os.kill(os.getpid(), signal.SIGTERM)
