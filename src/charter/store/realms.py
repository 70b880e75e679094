"""Realms: the tenant rows and their revision counter."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, case, or_, select, update
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


_REVISION = select(realms.c.revision).where(realms.c.id == bindparam("realm"))


async def revision(conn: AsyncConnection, realm_id: str) -> int:
    """The realm's revision alone: one primary-key read (realms has no row-level security, so
    it needs no realm setting, and on PostgreSQL no transaction either)."""
    value = (await conn.execute(_REVISION, {"realm": realm_id})).scalar()
    if value is None:
        raise NotFound(f"realm {realm_id!r} not found")
    return int(value)


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


# The locks and the sequencer every write takes, built once (building a statement and its
# cache key per call cost more than the rest of SQLAlchemy's work on it).
_LOCK = select(realms.c.clock).where(realms.c.id == bindparam("realm")).with_for_update()
_SHARE = (
    select(realms.c.id)
    .where(realms.c.id == bindparam("realm"))
    .with_for_update(read=True, key_share=True)
)
_NOW = bindparam("now", type_=realms.c.clock.type)
_SEQUENCE = (
    update(realms)
    .where(realms.c.id == bindparam("realm"))
    .values(
        revision=realms.c.revision + bindparam("by", type_=realms.c.revision.type),
        clock=case(
            (or_(realms.c.clock.is_(None), realms.c.clock < _NOW), _NOW), else_=realms.c.clock
        ),
    )
    .returning(realms.c.revision, realms.c.clock)
)


async def lock(conn: AsyncConnection, realm_id: str) -> datetime:
    """Take the realm's structure lock, held until commit, and return the write's time.

    Structure writes take it first: creates, moves, status changes that close a node (with or
    without a cascade) and owner changes, each of which must see a subtree no other write is
    changing. Held until commit, it is what serialises moves so two of them can never close a
    cycle. It excludes every node write too (they hold `share`), so the time taken here is
    never before the realm's latest event.
    """
    row = (await conn.execute(_LOCK, {"realm": realm_id})).first()
    if row is None:
        raise NotFound(f"realm {realm_id!r} not found")
    now = utcnow()
    return now if row.clock is None else max(now, aware(row.clock))


async def share(conn: AsyncConnection, realm_id: str) -> datetime:
    """Hold the realm's structure still, until commit, and return the write's provisional time.

    A node write (text, attributes other than the owner, an open-to-open status, rollback,
    deactivation) takes this instead of `lock`: on PostgreSQL a `FOR KEY SHARE` row lock,
    which node writes share with each other and with `sequence`, and which a structure write's
    `lock` waits for (and makes them wait for). So node writes on different directives run in
    parallel while the ancestry and the subtree they read stand still. The feed's order and
    time are still decided under a lock, the short one `sequence` takes at the end.
    """
    if (await conn.execute(_SHARE, {"realm": realm_id})).first() is None:
        raise NotFound(f"realm {realm_id!r} not found")
    return utcnow()


async def advance(conn: AsyncConnection, realm_id: str, by: int, clock: datetime) -> int:
    """Raise the realm revision by `by` (see `sequence`); the new revision."""
    revision, _ = await sequence(conn, realm_id, by, clock)
    return revision


async def sequence(
    conn: AsyncConnection, realm_id: str, by: int, now: datetime
) -> tuple[int, datetime]:
    """Raise the realm revision by `by`: the new revision, and the time of its events.

    The row lock this UPDATE takes is held until commit, so revisions are given out in commit
    order, gapless, whatever ran in parallel before it: this is the feed's sequencer. The time
    is the later of `now` and the realm's clock, stored back, so `occurred_at` never decreases
    along the feed. A write calls it last, after its directive rows are locked (the order every
    write takes its locks in: no deadlock), so the lock is held only to the commit.
    """
    row = (await conn.execute(_SEQUENCE, {"realm": realm_id, "by": by, "now": now})).one()
    return int(row.revision), aware(row.clock)
