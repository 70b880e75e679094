"""Idempotency records: the first response to a keyed write, kept to replay it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.db.tables import idempotency_records as r
from charter.store import dialect


@dataclass(frozen=True, slots=True)
class Scope:
    """A key is scoped to (realm, caller key, method, path); realm is '' outside realms."""

    realm_id: str
    caller: str
    method: str
    path: str
    key: str

    @property
    def lock_id(self) -> int:
        digest = hashlib.sha256(
            "\x1f".join((self.realm_id, self.caller, self.method, self.path, self.key)).encode()
        ).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class Stored:
    fingerprint: str
    status: int
    headers: dict[str, str]
    body: bytes


async def try_lock(conn: AsyncConnection, scope: Scope) -> bool:
    """Claim the key for this transaction; False if another transaction holds it now.

    On PostgreSQL a transaction-scoped advisory lock: released at commit or rollback, and by a
    crash. SQLite runs one transaction at a time, so the claim always succeeds.
    """
    if not dialect.of(conn).advisory_locks:
        return True
    claimed = await conn.scalar(select(func.pg_try_advisory_xact_lock(scope.lock_id)))
    return bool(claimed)


def _where(scope: Scope) -> tuple[ColumnElement[bool], ...]:
    return (
        r.c.realm_id == scope.realm_id,
        r.c.caller == scope.caller,
        r.c.method == scope.method,
        r.c.path == scope.path,
        r.c.key == scope.key,
    )


async def find(conn: AsyncConnection, scope: Scope) -> Stored | None:
    query = select(r.c.fingerprint, r.c.status, r.c.headers, r.c.body).where(*_where(scope))
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return Stored(row.fingerprint, row.status, dict(row.headers), bytes(row.body))


async def save(conn: AsyncConnection, scope: Scope, stored: Stored, now: datetime) -> None:
    await conn.execute(
        insert(r).values(
            realm_id=scope.realm_id,
            caller=scope.caller,
            method=scope.method,
            path=scope.path,
            key=scope.key,
            fingerprint=stored.fingerprint,
            status=stored.status,
            headers=stored.headers,
            body=stored.body,
            created_at=now,
        )
    )


async def purge(conn: AsyncConnection, realm_id: str, before: datetime) -> int:
    query = delete(r).where(r.c.realm_id == realm_id, r.c.created_at < before)
    return int((await conn.execute(query)).rowcount)
