"""The transactional outbox: events written in the change's own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware
from charter.db.tables import events as e
from charter.domain.events import EventType
from charter.store import realms


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: EventType
    directive_id: str
    revision: int
    version: int | None
    actor: str
    occurred_at: datetime
    affected_agents: Sequence[str] = ()
    payload: dict[str, Any] = field(default_factory=dict)
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Committed:
    """What one transaction's events change for caches: the agents, as of a realm revision."""

    realm: str
    stamp: int
    agents: frozenset[str]
    # False when the change cannot leave a template variable undefined (a text swap to a body
    # without `{{`): the check before commit skips it (services/variables.py).
    # Not part of what changes for caches, so not compared.
    may_leave_holes: bool = field(default=True, compare=False)


# The transaction's connection collects what it wrote; the runtime reads it after commit.
COMMITTED_KEY = "charter.committed"


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    type: str
    directive_id: str
    revision: int
    version: int | None
    actor: str
    message: str | None
    occurred_at: datetime
    affected_agents: list[str]
    payload: dict[str, Any]


_INSERT = insert(e)  # built once; its values are the parameters


async def append(
    conn: AsyncConnection,
    realm_id: str,
    new: Sequence[NewEvent],
    *,
    may_leave_holes: bool = True,
) -> int | None:
    """Give the events the next realm revisions, in order, and write them; the last one.

    Call it last in a write, once the directive rows are written: `realms.sequence` is the
    feed's sequencer, and its lock is held until commit. The events take the time it gives
    (the later of theirs and the realm's clock), so the feed's times never go back.
    `may_leave_holes`: as `Committed` has it (False only where the writer knows).
    """
    if not new:
        return None
    last, at = await realms.sequence(conn, realm_id, len(new), max(ev.occurred_at for ev in new))
    first = last - len(new) + 1
    await conn.execute(
        _INSERT,
        [
            {
                "realm_id": realm_id,
                "seq": first + i,
                "type": ev.type,
                "directive_id": ev.directive_id,
                "revision": ev.revision,
                "version": ev.version,
                "actor": ev.actor,
                "message": ev.message,
                "occurred_at": at,
                "affected_agents": sorted(ev.affected_agents),
                "payload": ev.payload,
            }
            for i, ev in enumerate(new)
        ],
    )
    agents = frozenset(agent for ev in new for agent in ev.affected_agents)
    change = Committed(realm_id, last, agents, may_leave_holes=may_leave_holes)
    conn.info.setdefault(COMMITTED_KEY, []).append(change)
    return last


def _event(row: object) -> Event:
    m = row._mapping  # type: ignore[attr-defined]
    return Event(
        seq=m["seq"],
        type=m["type"],
        directive_id=m["directive_id"],
        revision=m["revision"],
        version=m["version"],
        actor=m["actor"],
        message=m["message"],
        occurred_at=aware(m["occurred_at"]),
        affected_agents=list(m["affected_agents"]),
        payload=dict(m["payload"]),
    )


async def feed(
    conn: AsyncConnection,
    realm_id: str,
    after: int,
    limit: int,
    types: Sequence[str] = (),
    directive_id: str | None = None,
    until: int | None = None,
) -> list[Event]:
    """Events with `after` < seq (≤ `until`), oldest first, at most `limit`."""
    query = (
        select(e).where(e.c.realm_id == realm_id, e.c.seq > after).order_by(e.c.seq).limit(limit)
    )
    if until is not None:
        query = query.where(e.c.seq <= until)
    if types:
        query = query.where(e.c.type.in_(types))
    if directive_id is not None:
        query = query.where(e.c.directive_id == directive_id)
    return [_event(row) for row in await conn.execute(query)]


async def history(
    conn: AsyncConnection, realm_id: str, directive_id: str, limit: int, before: int | None
) -> list[Event]:
    """One directive's events, newest first."""
    query = (
        select(e)
        .where(e.c.realm_id == realm_id, e.c.directive_id == directive_id)
        .order_by(e.c.seq.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(e.c.seq < before)
    return [_event(row) for row in await conn.execute(query)]
