"""The relay's reads and its cursors: how far each realm's events have been delivered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.db.tables import events, realms, relay_cursors
from charter.store import dialect


@dataclass(frozen=True, slots=True)
class Pending:
    """One event still to deliver: its seq and the agents it affects."""

    seq: int
    affected_agents: list[str]
    created_at: datetime | None = None


async def pending_realms(conn: AsyncConnection) -> list[tuple[str, int, int]]:
    """(realm, delivered seq, revision) for every realm whose revision is past its cursor."""
    delivered = func.coalesce(relay_cursors.c.delivered_seq, 0)
    query = (
        select(realms.c.id, delivered, realms.c.revision)
        .select_from(realms)
        .outerjoin(relay_cursors, relay_cursors.c.realm_id == realms.c.id)
        .where(realms.c.revision > delivered)
    )
    return [(row[0], int(row[1]), int(row[2])) for row in await conn.execute(query)]


async def pending(conn: AsyncConnection, realm: str, after: int, limit: int) -> list[Pending]:
    """The realm's events after `after`, in seq order, without their payloads."""
    query = (
        select(events.c.seq, events.c.affected_agents, events.c.occurred_at)
        .where(events.c.realm_id == realm, events.c.seq > after)
        .order_by(events.c.seq)
        .limit(limit)
    )
    rows = await conn.execute(query)
    return [Pending(int(row.seq), list(row.affected_agents), row.occurred_at) for row in rows]


async def advance(conn: AsyncConnection, realm: str, stamp: int) -> None:
    """Move the realm's cursor to `stamp`, never back."""
    seam = dialect.of(conn)
    column = relay_cursors.c.delivered_seq
    await conn.execute(
        seam.upsert(
            relay_cursors,
            {"realm_id": realm, "delivered_seq": stamp},
            keys=["realm_id"],
            set_={"delivered_seq": seam.greatest(column, stamp)},
        )
    )
