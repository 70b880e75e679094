"""SQLAlchemy's aiosqlite adapter with one trip to the SQLite thread per statement.

aiosqlite runs every call on its own thread and hands the answer back to the event loop.
SQLAlchemy's adapter makes four such calls per statement (make a cursor, execute, fetch the
rows, close the cursor), and with one connection every transaction waits for the one before
it, each of those trips included: a trip waits for the loop to come round, behind whatever
else the loop has to do (the other requests). Here the four are one function run on the
SQLite thread, a transaction's BEGIN goes with its first statement, and the pool's rollback of
a connection it takes back is no trip when no transaction is open (docs/benchmarks.md,
"Embedded", measured).

It uses aiosqlite's `_execute` (queue a function on the connection's thread) and `_conn` (the
sqlite3 connection: statements run on that thread only; `in_transaction` is read from the
loop, which aiosqlite's connection allows): not public, so the embedded test suite is what
says it still works.

`at_once` goes further: a whole transaction (BEGIN, its statements, COMMIT) as ONE call on
that thread. The coroutine doing the work is driven there to its end, every statement and
the commit run on the sqlite3 connection directly, and no loop turn happens inside the
transaction that every other writer queues for (docs/benchmarks.md, "One call").
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

# (description, rows, lastrowid, rowcount), as the adapter's cursor keeps them.
_Answer = tuple[Any, list[Any], Any, int]


def _run(connection: aiosqlite.Connection, begin: bool, operation: str, parameters: Any) -> _Answer:
    """On the SQLite thread: the deferred BEGIN IMMEDIATE if any, the statement, its rows,
    and the cursor closed again."""
    raw: sqlite3.Connection = connection._conn
    if begin:
        raw.execute("BEGIN IMMEDIATE")
    cursor = raw.cursor()
    try:
        cursor.execute(operation, () if parameters is None else parameters)
        if cursor.description:
            return cursor.description, cursor.fetchall(), -1, -1
        return None, [], cursor.lastrowid, cursor.rowcount
    finally:
        cursor.close()


def _run_many(connection: aiosqlite.Connection, begin: bool, operation: str, rows: Any) -> _Answer:
    """`_run` for one statement over many parameter rows (an insert of several events)."""
    raw: sqlite3.Connection = connection._conn
    if begin:
        raw.execute("BEGIN IMMEDIATE")
    cursor = raw.cursor()
    try:
        cursor.executemany(operation, rows)
        return None, [], cursor.lastrowid, cursor.rowcount
    finally:
        cursor.close()


# The aiosqlite connection whose thread is running an `at_once` call, on that thread only.
_driving = threading.local()


def _here(connection: object) -> bool:
    """Whether this is `connection`'s thread, inside an `at_once` call: run directly."""
    return getattr(_driving, "connection", None) is connection


async def _at_once_here(run: Callable[..., _Answer], *args: Any) -> _Answer:
    """The statement, run at once: an awaitable that never waits. SQLAlchemy's AsyncConnection
    requires each statement to await something, and this is what it awaits."""
    return run(*args)


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._answer(_run, operation, parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._answer(_run_many, operation, seq_of_parameters)

    def _answer(self, run: Callable[..., _Answer], operation: Any, parameters: Any) -> None:
        adapted = cast("_Connection", self._adapt_connection)
        begin, adapted.begin_pending = adapted.begin_pending, False
        connection = self._connection
        try:
            if _here(connection):
                answer = self.await_(_at_once_here(run, connection, begin, operation, parameters))
            else:
                answer = self.await_(
                    connection._execute(run, connection, begin, operation, parameters)
                )
        except Exception as error:
            self._adapt_connection._handle_exception(error)  # raises
        self.description, rows, self.lastrowid, self.rowcount = answer
        self._rows = deque(rows)


class _Connection(AsyncAdapt_aiosqlite_connection):
    """The connection, with BEGIN IMMEDIATE sent with the transaction's first statement, and
    a commit or rollback of no open transaction (the pool's reset when a connection comes
    back) answered without a trip."""

    __slots__ = ("begin_pending",)

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.begin_pending = False

    def begin_immediate(self) -> None:
        """Begin with the next statement (session.py's `begin` listener)."""
        self.begin_pending = True

    def _open(self) -> bool:
        """Whether a transaction is open (or about to be); the flag is safe to read here."""
        if self.begin_pending:
            self.begin_pending = False
            return False
        raw: sqlite3.Connection = self._connection._conn
        return raw.in_transaction

    def rollback(self) -> None:
        if not self._open():
            return
        if _here(self._connection):
            self._direct(self._connection._conn.rollback)
        else:
            super().rollback()

    def commit(self) -> None:
        if not self._open():
            return
        if _here(self._connection):
            self._direct(self._connection._conn.commit)
        else:
            super().commit()

    def _direct(self, end: Callable[[], None]) -> None:
        try:
            end()
        except Exception as error:
            self._handle_exception(error)  # raises

    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        return super().cursor(server_side) if server_side else _Cursor(self)


class Driver(AsyncAdapt_aiosqlite_dbapi):
    """The `module` for `create_async_engine`: the adapter, with the one-trip cursor."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)


def driver() -> Driver:
    return Driver(aiosqlite, sqlite3)


class AwaitedElsewhere(RuntimeError):
    """Work given to `at_once` awaited something other than its own connection's statements."""


async def at_once(conn: AsyncConnection, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `work()` to its end as one call on the SQLite thread of `conn` (checked out, and
    outside any transaction: `work` begins and ends its own).

    `work` must await nothing but statements on `conn` and its transaction's begin and end:
    those run directly on the thread, so the coroutine never waits and is driven there in
    one go. Anything else it awaits (another connection, a sleep, a lock) would need the
    event loop, which this thread is not: the coroutine is closed (its transaction rolls
    back) and AwaitedElsewhere raised. What `work` raises is raised here. It runs in a copy of
    the caller's context, as a task would: the request id of its log lines and the trace its
    statement spans belong to are the caller's.
    """
    raw = await conn.get_raw_connection()
    adapted = raw.dbapi_connection
    assert isinstance(adapted, _Connection), "at_once needs a connection of this driver"
    connection: aiosqlite.Connection = adapted._connection
    context = contextvars.copy_context()
    call: asyncio.Future[T] = asyncio.ensure_future(
        connection._execute(context.run, _drive, connection, work)
    )
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        # The thread runs the call on regardless: the connection may go back to the pool
        # (whose reset rolls back, and whose next checkout begins) only once it has ended.
        await _ended(call)
        raise


async def _ended(call: asyncio.Future[Any]) -> None:
    """Wait for `call` to end, through any further cancellation (re-raised by the caller)."""
    while not call.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({call})
    if not call.cancelled():
        call.exception()  # retrieved: its outcome went to nobody


def _drive(connection: aiosqlite.Connection, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """On the SQLite thread: the coroutine, from its start to its end, statements direct."""
    _driving.connection = connection
    try:
        coroutine = work()
        try:
            coroutine.send(None)
        except StopIteration as done:
            value: T = done.value
            return value
        coroutine.close()
        raise AwaitedElsewhere("a write run at once on SQLite awaited more than its statements")
    finally:
        _driving.connection = None
