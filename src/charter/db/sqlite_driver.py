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
"""

from __future__ import annotations

import sqlite3
from collections import deque
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)

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


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        adapted = cast("_Connection", self._adapt_connection)
        begin, adapted.begin_pending = adapted.begin_pending, False
        try:
            answer: _Answer = self.await_(
                self._connection._execute(_run, self._connection, begin, operation, parameters)
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
        if self._open():
            super().rollback()

    def commit(self) -> None:
        if self._open():
            super().commit()

    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        return super().cursor(server_side) if server_side else _Cursor(self)


class Driver(AsyncAdapt_aiosqlite_dbapi):
    """The `module` for `create_async_engine`: the adapter, with the one-trip cursor."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)


def driver() -> Driver:
    return Driver(aiosqlite, sqlite3)
