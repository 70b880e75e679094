"""The one seam for what differs between PostgreSQL and SQLite.

store/ modules ask this module, and nothing else in Charter looks at a dialect's name: what
a database can do (server-side functions, advisory locks, a per-transaction realm setting
for row-level security) and the SQL spelled differently on each (insert-or-ignore, upsert,
the greater of two values). A third database is a third `Dialect` here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, TextClause, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect as EngineDialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    # The PL/pgSQL functions of migrations 0004 to 0007 (compositions in one statement, the
    # one-call text swap).
    server_functions: bool
    # Transaction-scoped advisory locks (idempotency keys); without them, a database that
    # runs one transaction at a time needs none.
    advisory_locks: bool
    # Row-level security keyed on a transaction-local `charter.realm` setting.
    realm_setting: bool
    # One connection with a thread of its own, where a whole transaction can run as one call
    # (db/sqlite_driver.py's `at_once`).
    whole_calls: bool = False

    def insert_ignore(
        self,
        table: Table,
        index: Sequence[str] | None = None,
        where: ColumnElement[bool] | TextClause | None = None,
    ) -> Insert:
        """INSERT that skips rows whose key is already there; with `index` (and `where`, for
        a partial unique index), only a clash on that index is skipped."""
        columns = None if index is None else [table.c[name] for name in index]
        if self.name == "postgresql":
            pg = postgresql.insert(table)
            return pg.on_conflict_do_nothing(index_elements=columns, index_where=where)
        lite = sqlite.insert(table)
        return lite.on_conflict_do_nothing(index_elements=columns, index_where=where)

    def upsert(
        self, table: Table, values: Mapping[str, Any], keys: Sequence[str], set_: Mapping[str, Any]
    ) -> Insert:
        """INSERT `values`, or on a clash of `keys` UPDATE with `set_`."""
        columns = [table.c[key] for key in keys]
        if self.name == "postgresql":
            pg = postgresql.insert(table).values(**values)
            return pg.on_conflict_do_update(index_elements=columns, set_=dict(set_))
        lite = sqlite.insert(table).values(**values)
        return lite.on_conflict_do_update(index_elements=columns, set_=dict(set_))

    def greatest(self, *values: Any) -> ColumnElement[Any]:
        """The greatest of the values (SQLite's multi-argument max is its GREATEST)."""
        if self.name == "postgresql":
            return func.greatest(*values)
        return func.max(*values)


POSTGRES = Dialect("postgresql", server_functions=True, advisory_locks=True, realm_setting=True)
SQLITE = Dialect(
    "sqlite", server_functions=False, advisory_locks=False, realm_setting=False, whole_calls=True
)
_KNOWN = {d.name: d for d in (POSTGRES, SQLITE)}


def named(engine_dialect: EngineDialect) -> Dialect:
    try:
        return _KNOWN[engine_dialect.name]
    except KeyError:
        raise ValueError(f"unsupported database: {engine_dialect.name}") from None


def of(conn: AsyncConnection) -> Dialect:
    return named(conn.dialect)
