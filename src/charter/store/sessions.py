"""Console session rows: found by the hash of the cookie, with the key they stand for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware
from charter.db.tables import api_keys as k
from charter.db.tables import console_sessions as s
from charter.domain.access import Role
from charter.store.keys import Key


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    key_id: str
    key_hash: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Found:
    """A live session and its key (None: a key without a row, the bootstrap key)."""

    session: SessionRow
    key: Key | None


async def add(conn: AsyncConnection, row: SessionRow, secret_hash: str) -> None:
    await conn.execute(
        insert(s).values(
            id=row.id,
            secret_hash=secret_hash,
            key_id=row.key_id,
            key_hash=row.key_hash,
            csrf_token=row.csrf_token,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )
    )


def _session(m: Any) -> SessionRow:
    return SessionRow(
        id=m["session_id"],
        key_id=m["key_id"],
        key_hash=m["key_hash"],
        csrf_token=m["csrf_token"],
        created_at=aware(m["created_at"]),
        expires_at=aware(m["expires_at"]),
    )


async def live(conn: AsyncConnection, secret_hash: str, now: datetime) -> Found | None:
    """The session with this cookie hash, unless it ended, expired, or its key was revoked."""
    query = (
        select(
            s.c.id.label("session_id"),
            s.c.key_id,
            s.c.key_hash,
            s.c.csrf_token,
            s.c.created_at,
            s.c.expires_at,
            k.c.id.label("key_row"),
            k.c.role,
            k.c.realms,
            k.c.agent_id,
            k.c.name,
            k.c.created_at.label("key_created_at"),
            k.c.revoked_at,
        )
        .select_from(s.outerjoin(k, k.c.id == s.c.key_id))
        .where(s.c.secret_hash == secret_hash, s.c.ended_at.is_(None), s.c.expires_at > now)
    )
    row: Row[Any] | None = (await conn.execute(query)).first()
    if row is None:
        return None
    m = row._mapping
    if m["key_row"] is None:
        return Found(_session(m), None)
    if m["revoked_at"] is not None:
        return None
    key = Key(
        id=m["key_row"],
        role=Role(m["role"]),
        realms=list(m["realms"]),
        agent_id=m["agent_id"],
        name=m["name"],
        created_at=aware(m["key_created_at"]),
        revoked_at=None,
    )
    return Found(_session(m), key)


async def end(conn: AsyncConnection, secret_hash: str, now: datetime) -> str | None:
    """End the session with this cookie hash; its id, or None if none was live."""
    query = (
        update(s)
        .where(s.c.secret_hash == secret_hash, s.c.ended_at.is_(None))
        .values(ended_at=now)
        .returning(s.c.id)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else str(row.id)


async def ended_among(conn: AsyncConnection, ids: list[str], now: datetime) -> list[str]:
    """Those of `ids` that are sessions no longer live (ended, expired, or key revoked)."""
    query = (
        select(s.c.id)
        .select_from(s.outerjoin(k, k.c.id == s.c.key_id))
        .where(
            s.c.id.in_(ids),
            (s.c.ended_at.is_not(None)) | (s.c.expires_at <= now) | (k.c.revoked_at.is_not(None)),
        )
    )
    return [row.id for row in await conn.execute(query)]


async def purge(conn: AsyncConnection, before: datetime) -> int:
    """Delete sessions that expired before `before`."""
    result = await conn.execute(delete(s).where(s.c.expires_at < before))
    return int(result.rowcount or 0)
