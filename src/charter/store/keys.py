"""API key rows: only the SHA-256 of each secret is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware
from charter.db.tables import api_keys as k
from charter.domain.access import Caller, Role
from charter.errors import NotFound


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    role: Role
    realms: list[str]
    agent_id: str | None
    name: str | None
    created_at: datetime
    revoked_at: datetime | None

    def caller(self) -> Caller:
        return Caller(self.id, self.role, frozenset(self.realms), self.agent_id, self.name)


def _key(row: Row[Any]) -> Key:
    m = row._mapping
    return Key(
        id=m["id"],
        role=Role(m["role"]),
        realms=list(m["realms"]),
        agent_id=m["agent_id"],
        name=m["name"],
        created_at=aware(m["created_at"]),
        revoked_at=aware(m["revoked_at"]) if m["revoked_at"] is not None else None,
    )


async def add(conn: AsyncConnection, key: Key, secret_hash: str) -> None:
    await conn.execute(
        insert(k).values(
            id=key.id,
            secret_hash=secret_hash,
            role=key.role.value,
            realms=key.realms,
            agent_id=key.agent_id,
            name=key.name,
            created_at=key.created_at,
        )
    )


async def by_secret_hash(conn: AsyncConnection, secret_hash: str) -> Key | None:
    query = select(k).where(k.c.secret_hash == secret_hash, k.c.revoked_at.is_(None))
    row = (await conn.execute(query)).first()
    return None if row is None else _key(row)


async def page(conn: AsyncConnection, limit: int, after: str | None) -> list[Key]:
    query = select(k).order_by(k.c.id).limit(limit)
    if after is not None:
        query = query.where(k.c.id > after)
    return [_key(row) for row in await conn.execute(query)]


async def revoke(conn: AsyncConnection, key_id: str, now: datetime) -> None:
    query = update(k).where(k.c.id == key_id, k.c.revoked_at.is_(None)).values(revoked_at=now)
    if (await conn.execute(query)).rowcount == 0:
        exists = (await conn.execute(select(k.c.id).where(k.c.id == key_id))).first()
        if exists is None:
            raise NotFound(f"key {key_id!r} not found")


async def revoked_among(conn: AsyncConnection, ids: list[str]) -> list[str]:
    """Those of `ids` that are revoked."""
    query = select(k.c.id).where(k.c.id.in_(ids), k.c.revoked_at.is_not(None))
    return [row.id for row in await conn.execute(query)]


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(k))).scalar_one())


async def names(conn: AsyncConnection, ids: set[str]) -> dict[str, str | None]:
    """Key id -> name, for showing who made a change; the bootstrap key names itself."""
    found: dict[str, str | None] = {"bootstrap": "bootstrap"} if "bootstrap" in ids else {}
    wanted = sorted(ids - found.keys())
    if wanted:
        rows = await conn.execute(select(k.c.id, k.c.name).where(k.c.id.in_(wanted)))
        found.update({row.id: row.name for row in rows})
    return found
