"""The engine and the one place where transactions begin, commit and roll back."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import String, bindparam, event, func, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from charter.db.sqlite_driver import at_once, driver
from charter.errors import NotFound
from charter.metrics import Metrics
from charter.observability.metrics import REPLICA_OUTCOMES
from charter.store import dialect, realms

T = TypeVar("T")

# A replica that does not answer within this time is skipped, and after a failure it is left
# alone this long: a dead replica costs one short wait, then nothing but a read on the primary.
REPLICA_CONNECT_SECONDS = 1.0
REPLICA_STATEMENT_SECONDS = 2.0
REPLICA_REST_SECONDS = 5.0

# Every transaction's first statement, built once: a statement built per call pays for its
# construction and its cache key on every request (a fifth of a write's SQLAlchemy time).
_SET_REALM = select(func.set_config("charter.realm", bindparam("realm", type_=String()), True))


class Database:
    """An async engine plus the per-transaction realm setting that row-level security keys on."""

    def __init__(self, engine: AsyncEngine, replicas: Sequence[AsyncEngine] = ()) -> None:
        self.engine = engine
        # What this database can do: the store's dialect seam says, for every difference.
        self.dialect = dialect.named(engine.dialect)
        self.replicas = [Replica(r) for r in replicas]
        self._waiting: _Gauge = _NO_GAUGE
        self._replica_reads: Callable[[str], None] = lambda _outcome: None
        _keep_text_out_of_logs()

    def instrument(self, metrics: Metrics) -> None:
        """Keep the pool gauges (in use, waiting, size) up to date from now on."""
        pool = self.engine.pool
        metrics.pool_size.set(pool.size() if isinstance(pool, QueuePool) else 1)
        in_use = metrics.pool_in_use
        event.listen(self.engine.sync_engine, "checkout", lambda *_: in_use.inc())
        event.listen(self.engine.sync_engine, "checkin", lambda *_: in_use.dec())
        self._waiting = metrics.pool_waiting
        counts = {o: metrics.replica_reads.labels(o) for o in REPLICA_OUTCOMES}
        self._replica_reads = lambda outcome: counts[outcome].inc()

    @classmethod
    def connect(
        cls, url: str, *, pool_size: int = 20, replica_urls: Sequence[str] = ()
    ) -> Database:
        if url.startswith("sqlite"):
            return cls(_sqlite_engine(url))
        return cls(_engine(url, pool_size), [_replica_engine(r, pool_size) for r in replica_urls])

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
                    await conn.execute(_SET_REALM, {"realm": realm_id or ""})
                yield conn
        finally:
            if not acquired:
                waiting.dec()

    async def whole(
        self, realm_id: str | None, work: Callable[[AsyncConnection], Awaitable[T]]
    ) -> T:
        """`work` in one transaction, as `transaction` runs a block; where the dialect allows
        (SQLite), the whole transaction, BEGIN to COMMIT, as one call on the connection's
        thread (db/sqlite_driver.py), so nothing else the process does waits inside it.

        `work` must await nothing but statements on the connection it is given.
        """
        if not self.dialect.whole_calls:
            async with self.transaction(realm_id) as conn:
                return await work(conn)
        waiting, acquired = self._waiting, False
        waiting.inc()
        try:
            async with self.engine.connect() as conn:
                waiting.dec()
                acquired = True

                async def transaction() -> T:
                    async with conn.begin():
                        return await work(conn)

                return await at_once(conn, transaction)
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

    async def immutable(self, realm_id: str, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """A read of rows that never change once written (versions, recorded compositions, key
        names), on a streaming replica when one is up, else on the primary.

        The fence (ADR 0013): such a row is either on the replica exactly as on the primary, or
        not there yet. So `read` raising NotFound on a replica is no answer: the replica may
        not have replayed the write the caller just made, and the primary answers instead. A
        replica that fails is rested for a few seconds and the primary answers meanwhile.
        """
        return await self._replica_else_primary(realm_id, read, read)

    async def replayed(
        self,
        realm_id: str,
        read: Callable[[AsyncConnection], Awaitable[T]],
        depends_on: int | None = None,
    ) -> T:
        """A read of append-only rows (a directive's history, the feed, a version list, a
        stream's catch-up) on a streaming replica that has replayed every write the request
        depends on, else on the primary.

        The fence (ADR 0013): the realm revision. Every write that adds such rows raises it
        under a row lock held to its commit, so revisions commit in order, and a replica whose
        `realms.revision` is r has replayed every write up to r (replay keeps commit order).
        `depends_on` is the revision the answer must include: for a page after a cursor, the
        cursor (every row before it committed before it), at no cost; None: the primary's
        revision, read first (one primary-key read), so the answer holds every write committed
        before the request. A replica behind it is skipped (outcome `not_replayed`). Without a
        usable replica the primary reads at once, with no fence to read.
        """
        if not any(replica.usable() for replica in self.replicas):
            async with self.transaction(realm_id) as conn:
                return await read(conn)
        if depends_on is None:
            async with self.one_statement(realm_id) as conn:
                depends_on = await realms.revision(conn, realm_id)
        floor = depends_on

        async def fenced(conn: AsyncConnection) -> T:
            # In the read's own transaction, before it: each later statement's snapshot is at
            # least as recent (read committed), so the read sees all the fence saw.
            try:
                replayed = await realms.revision(conn, realm_id)
            except NotFound:
                replayed = -1
            if replayed < floor:
                raise NotFound(f"realm {realm_id!r} not replayed to revision {floor}")
            return await read(conn)

        return await self._replica_else_primary(realm_id, fenced, read)

    async def _replica_else_primary(
        self,
        realm_id: str,
        on_replica: Callable[[AsyncConnection], Awaitable[T]],
        read: Callable[[AsyncConnection], Awaitable[T]],
    ) -> T:
        answered = await self._on_replica(realm_id, on_replica)
        if answered is not None:
            return answered[0]
        async with self.transaction(realm_id) as conn:
            return await read(conn)

    async def _on_replica(
        self, realm_id: str, read: Callable[[AsyncConnection], Awaitable[T]]
    ) -> tuple[T] | None:
        """`(read's answer,)` from the first usable replica; None when the primary must answer:
        `read` raised NotFound there (not replayed yet), or every replica failed or rests."""
        for replica in self.replicas:
            if not replica.usable():
                continue
            try:
                async with replica.transaction(realm_id) as conn:
                    result = await read(conn)
            except NotFound:
                self._replica_reads("not_replayed")
                return None  # another replica may be as far behind: the primary knows
            except (OSError, TimeoutError, DBAPIError, InterfaceError, OperationalError):
                replica.rest()
                self._replica_reads("unavailable")
                continue
            self._replica_reads("replica")
            return (result,)
        return None

    async def dispose(self) -> None:
        await self.engine.dispose()
        for replica in self.replicas:
            await replica.engine.dispose()


class Replica:
    """A read-only streaming replica, and when it last failed."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self._clock = clock
        self._rest_until = 0.0

    def usable(self) -> bool:
        return self._clock() >= self._rest_until

    def rest(self) -> None:
        self._rest_until = self._clock() + REPLICA_REST_SECONDS

    @asynccontextmanager
    async def transaction(self, realm_id: str) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            await conn.execute(_SET_REALM, {"realm": realm_id})
            yield conn


def _engine(url: str, pool_size: int) -> AsyncEngine:
    return create_async_engine(
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


def _replica_engine(url: str, pool_size: int) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=1800,
        pool_pre_ping=True,  # a replica restarted under a pooled connection: fall over at once
        hide_parameters=True,
        connect_args={
            "timeout": REPLICA_CONNECT_SECONDS,
            "command_timeout": REPLICA_STATEMENT_SECONDS,
            "server_settings": {"application_name": "charter-replica-read"},
        },
    )


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
