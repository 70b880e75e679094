"""Timers: the due work of claims and schedules, one row each (ADR 0008).

Read across realms to find what is due (ids and times only); written, and deleted, only in a
transaction that names the realm and holds its lock, so that taking a timer and doing its
work are one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware
from charter.db.tables import timers as t

CLAIM = "claim"
SCHEDULE = "schedule"
# Set on a transaction's connection that wrote a timer: after commit, the runtime wakes this
# process's due-work loop, which may not have known of it.
WROTE_KEY = "charter.timers"


@dataclass(frozen=True, slots=True)
class Timer:
    id: str
    kind: str
    due_at: datetime


async def add(conn: AsyncConnection, realm_id: str, timer: Timer) -> None:
    await conn.execute(
        insert(t).values(realm_id=realm_id, id=timer.id, kind=timer.kind, due_at=timer.due_at)
    )
    conn.info[WROTE_KEY] = True


async def move(conn: AsyncConnection, realm_id: str, timer_id: str, due_at: datetime) -> None:
    await conn.execute(
        update(t).where(t.c.realm_id == realm_id, t.c.id == timer_id).values(due_at=due_at)
    )
    conn.info[WROTE_KEY] = True


async def remove(conn: AsyncConnection, realm_id: str, timer_id: str) -> None:
    await conn.execute(delete(t).where(t.c.realm_id == realm_id, t.c.id == timer_id))


async def next_due(conn: AsyncConnection) -> datetime | None:
    """The earliest due time of any realm's timers."""
    found = (await conn.execute(select(func.min(t.c.due_at)))).scalar_one_or_none()
    return None if found is None else aware(found)


async def due_realms(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Realms with a timer due at `now`, the most overdue first."""
    query = (
        select(t.c.realm_id)
        .where(t.c.due_at <= now)
        .group_by(t.c.realm_id)
        .order_by(func.min(t.c.due_at))
        .limit(limit)
    )
    return [row[0] for row in await conn.execute(query)]


async def take_due(conn: AsyncConnection, realm_id: str, now: datetime, limit: int) -> list[Timer]:
    """The realm's due timers, locked until commit; those another transaction holds are
    skipped (PostgreSQL), not waited for."""
    query = (
        select(t.c.id, t.c.kind, t.c.due_at)
        .where(t.c.realm_id == realm_id, t.c.due_at <= now)
        .order_by(t.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [Timer(row.id, row.kind, aware(row.due_at)) for row in await conn.execute(query)]
