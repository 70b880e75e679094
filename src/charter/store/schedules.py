"""Schedules: timed CAS writes on a directive, and how each one ended (§8)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware
from charter.db.tables import schedules as s
from charter.errors import NotFound

PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Schedule:
    id: str
    directive_id: str
    at: datetime
    action: dict[str, Any]
    expected_revision: int | None
    state: str
    creator: str
    created_at: datetime
    ran_at: datetime | None
    reason: str | None


def _schedule(row: Row[Any]) -> Schedule:
    m = row._mapping
    return Schedule(
        id=m["id"],
        directive_id=m["directive_id"],
        at=aware(m["at"]),
        action=dict(m["action"]),
        expected_revision=m["expected_revision"],
        state=m["state"],
        creator=m["creator"],
        created_at=aware(m["created_at"]),
        ran_at=None if m["ran_at"] is None else aware(m["ran_at"]),
        reason=m["reason"],
    )


async def add(conn: AsyncConnection, realm_id: str, values: Mapping[str, Any]) -> None:
    await conn.execute(insert(s).values(**values, realm_id=realm_id, state=PENDING))


async def get(
    conn: AsyncConnection, realm_id: str, schedule_id: str, directive_id: str | None = None
) -> Schedule:
    query = select(s).where(s.c.realm_id == realm_id, s.c.id == schedule_id)
    if directive_id is not None:
        query = query.where(s.c.directive_id == directive_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"schedule {schedule_id!r} not found")
    return _schedule(row)


async def finish(
    conn: AsyncConnection,
    realm_id: str,
    schedule_id: str,
    state: str,
    now: datetime,
    reason: str | None = None,
) -> Schedule | None:
    """Move a pending schedule to `state`; None if it was no longer pending."""
    query = (
        update(s)
        .where(s.c.realm_id == realm_id, s.c.id == schedule_id, s.c.state == PENDING)
        .values(state=state, ran_at=now, reason=reason)
        .returning(*s.c)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _schedule(row)


async def for_directive(
    conn: AsyncConnection, realm_id: str, directive_id: str, limit: int, after: str | None
) -> list[Schedule]:
    query = (
        select(s)
        .where(s.c.realm_id == realm_id, s.c.directive_id == directive_id)
        .order_by(s.c.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(s.c.id > after)
    return [_schedule(row) for row in await conn.execute(query)]
