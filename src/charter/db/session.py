"""The engine and the one place where transactions begin, commit and roll back."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from charter.db.sqlite_driver import driver
from charter.metrics import Metrics
from charter.store import dialect


class Database:
    """An async engine plus the per-transaction realm setting that row-level security keys on."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # What this database can do: the store's dialect seam says, for every difference.
        self.dialect = dialect.named(engine.dialect)
        self._waiting: _Gauge = _NO_GAUGE
        _keep_text_out_of_logs()

    def instrument(self, metrics: Metrics) -> None:
        """Keep the pool gauges (in use, waiting, size) up to date from now on."""
        pool = self.engine.pool
        metrics.pool_size.set(pool.size() if isinstance(pool, QueuePool) else 1)
        in_use = metrics.pool_in_use
        event.listen(self.engine.sync_engine, "checkout", lambda *_: in_use.inc())
        event.listen(self.engine.sync_engine, "checkin", lambda *_: in_use.dec())
        self._waiting = metrics.pool_waiting

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 20) -> Database:
        if url.startswith("sqlite"):
            return cls(_sqlite_engine(url))
        engine = create_async_engine(
            url,
            # Connections stay open once made: no overflow, because an overflow connection is
            # closed when it is returned, and under bursts of writers that meant a new
            # connection (TLS handshake, an empty prepared-statement cache) per request.
            # Requests beyond `pool_size` wait for a connection instead.
            pool_size=pool_size,
            max_overflow=0,
            pool_recycle=1800,
            hide_parameters=True,  # statement parameters are directive text: never in errors
            connect_args={"server_settings": {"application_name": "charter"}},
        )
        return cls(engine)

    @asynccontextmanager
    async def transaction(self, realm_id: str | None = None) -> AsyncIterator[AsyncConnection]:
        """One transaction: commits when the block ends, rolls back when it raises.

        On PostgreSQL the realm setting is the transaction's first statement and is
        transaction-local, so a pooled connection never carries it into another request.
        """
        waiting, acquired = self._waiting, False
        waiting.inc()
        try:
            async with self.engine.begin() as conn:
                waiting.dec()
                acquired = True
                if self.dialect.realm_setting:
                    await conn.execute(
                        select(func.set_config("charter.realm", realm_id or "", True))
                    )
                yield conn
        finally:
            if not acquired:
                waiting.dec()

    @asynccontextmanager
    async def one_statement(self, realm_id: str) -> AsyncIterator[AsyncConnection]:
        """For a read that is a single statement setting the realm itself (PostgreSQL): no
        BEGIN, no COMMIT, one round trip. Elsewhere, an ordinary transaction."""
        if not self.dialect.server_functions:
            async with self.transaction(realm_id) as conn:
                yield conn
            return
        waiting, acquired = self._waiting, False
        waiting.inc()
        try:
            async with self.engine.connect() as conn:
                waiting.dec()
                acquired = True
                yield await conn.execution_options(isolation_level="AUTOCOMMIT")
        finally:
            if not acquired:
                waiting.dec()

    async def dispose(self) -> None:
        await self.engine.dispose()


class _Gauge(Protocol):
    def inc(self, amount: float = 1) -> None: ...

    def dec(self, amount: float = 1) -> None: ...


class _NoGauge:
    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass


_NO_GAUGE = _NoGauge()


class _NoRowsOrParameters(logging.Filter):
    """Drops DEBUG records: there the engine logs result rows and aiosqlite each call with its
    parameters, i.e. directive text, which must never reach a log, whatever the log level."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def _keep_text_out_of_logs() -> None:
    for name in ("sqlalchemy.engine.Engine", "aiosqlite"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoRowsOrParameters) for f in logger.filters):
            logger.addFilter(_NoRowsOrParameters())


def _sqlite_engine(url: str) -> AsyncEngine:
    # One connection: the embedded mode serialises every transaction through it, so SQLite
    # never has to upgrade a reader to a writer (the source of SQLITE_BUSY deadlocks).
    # Statements one trip each to aiosqlite's thread (sqlite_driver.py).
    engine = create_async_engine(
        url, pool_size=1, max_overflow=0, hide_parameters=True, module=driver()
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA busy_timeout = 5000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Sent with the transaction's first statement, in the same trip (sqlite_driver.py).
        conn.connection.dbapi_connection.begin_immediate()

    return engine
