"""Realms: the tenant rows and their revision counter."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware, utcnow
from charter.db.tables import realms
from charter.errors import AlreadyExists, NotFound


@dataclass(frozen=True, slots=True)
class Realm:
    id: str
    name: str
    revision: int
    created_at: datetime


def _realm(row: Row[Any]) -> Realm:
    m = row._mapping
    return Realm(
        id=m["id"], name=m["name"], revision=m["revision"], created_at=aware(m["created_at"])
    )


async def create(conn: AsyncConnection, realm_id: str, name: str, now: datetime) -> Realm:
    try:
        await conn.execute(
            # The revision starts at its default (0): the app role may not choose it.
            realms.insert().values(id=realm_id, name=name, created_at=now)
        )
    except IntegrityError as exc:
        raise AlreadyExists(f"realm {realm_id!r} already exists") from exc
    return Realm(id=realm_id, name=name, revision=0, created_at=now)


async def get(conn: AsyncConnection, realm_id: str) -> Realm:
    row = (await conn.execute(select(realms).where(realms.c.id == realm_id))).first()
    if row is None:
        raise NotFound(f"realm {realm_id!r} not found")
    return _realm(row)


async def page(
    conn: AsyncConnection, limit: int, after: str | None, only: Collection[str] | None = None
) -> list[Realm]:
    """Realms by id; `only` restricts to those ids (a key's realms)."""
    query = select(realms).order_by(realms.c.id).limit(limit)
    if after is not None:
        query = query.where(realms.c.id > after)
    if only is not None:
        query = query.where(realms.c.id.in_(sorted(only)))
    return [_realm(row) for row in await conn.execute(query)]


async def lock(conn: AsyncConnection, realm_id: str) -> datetime:
    """Take the realm's write lock, held until commit, and return the write's time.

    Every write in a realm takes this lock first: it is what makes the realm revision gapless
    and in commit order, and what serialises moves so two of them can never close a cycle.
    The time is taken here, under the lock, and never before the realm's latest event, so
    along the feed `occurred_at` never decreases (`advance` stores it back).
    """
    query = select(realms.c.clock).where(realms.c.id == realm_id).with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"realm {realm_id!r} not found")
    now = utcnow()
    return now if row.clock is None else max(now, aware(row.clock))


async def advance(conn: AsyncConnection, realm_id: str, by: int, clock: datetime) -> int:
    """Raise the realm revision by `by` and set its clock (under the lock); the new revision."""
    query = (
        update(realms)
        .where(realms.c.id == realm_id)
        .values(revision=realms.c.revision + by, clock=clock)
        .returning(realms.c.revision)
    )
    return int((await conn.execute(query)).scalar_one())
