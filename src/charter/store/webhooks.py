"""Webhooks, their delivery cursors and leases, and the log of their delivery attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware
from charter.db.tables import realms, webhook_cursors, webhook_deliveries, webhooks
from charter.errors import NotFound
from charter.store import dialect

ACTIVE = "active"
DISABLED = "disabled"

w, c, d = webhooks, webhook_cursors, webhook_deliveries


@dataclass(frozen=True, slots=True)
class Webhook:
    realm_id: str
    id: str
    url: str
    secret: str
    events: list[str]
    agents: list[str] | None
    created_by: str
    created_at: datetime
    state: str
    delivered_seq: int
    failures: int
    failing_since: datetime | None
    next_attempt_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    webhook_id: str
    seq: int
    message_id: str
    event_type: str
    attempt: int
    manual: bool
    status_code: int | None
    error: str | None
    latency_ms: float
    attempted_at: datetime

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class Claim:
    """A webhook's delivery lease, held by one process: where its cursor stands."""

    realm_id: str
    webhook_id: str
    delivered_seq: int
    failures: int
    failing_since: datetime | None


def _maybe(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


def _webhook(row: Row[Any]) -> Webhook:
    m = row._mapping
    return Webhook(
        realm_id=m["realm_id"],
        id=m["id"],
        url=m["url"],
        secret=m["secret"],
        events=list(m["event_types"]),
        agents=None if m["agents"] is None else list(m["agents"]),
        created_by=m["created_by"],
        created_at=aware(m["created_at"]),
        state=m["state"],
        delivered_seq=int(m["delivered_seq"]),
        failures=int(m["failures"]),
        failing_since=_maybe(m["failing_since"]),
        next_attempt_at=aware(m["next_attempt_at"]),
        disabled_at=_maybe(m["disabled_at"]),
    )


def _delivery(row: Row[Any]) -> Delivery:
    m = row._mapping
    return Delivery(
        id=m["id"],
        webhook_id=m["webhook_id"],
        seq=int(m["seq"]),
        message_id=m["message_id"],
        event_type=m["event_type"],
        attempt=int(m["attempt"]),
        manual=bool(m["manual"]),
        status_code=m["status_code"],
        error=m["error"],
        latency_ms=float(m["latency_ms"]),
        attempted_at=aware(m["attempted_at"]),
    )


_STATE = (
    c.c.state,
    c.c.delivered_seq,
    c.c.failures,
    c.c.failing_since,
    c.c.next_attempt_at,
    c.c.disabled_at,
)


def _joined() -> Any:
    joined = w.join(c, and_(c.c.realm_id == w.c.realm_id, c.c.webhook_id == w.c.id))
    return select(w, *_STATE).select_from(joined)


async def create(conn: AsyncConnection, hook: Webhook) -> None:
    """The webhook and its cursor, which starts at `hook.delivered_seq`."""
    await conn.execute(
        insert(w).values(
            realm_id=hook.realm_id,
            id=hook.id,
            url=hook.url,
            secret=hook.secret,
            event_types=hook.events,
            agents=hook.agents,
            created_by=hook.created_by,
            created_at=hook.created_at,
        )
    )
    await conn.execute(
        insert(c).values(
            realm_id=hook.realm_id,
            webhook_id=hook.id,
            state=hook.state,
            delivered_seq=hook.delivered_seq,
            failures=0,
            next_attempt_at=hook.created_at,
        )
    )


async def get(conn: AsyncConnection, realm_id: str, webhook_id: str) -> Webhook:
    query = _joined().where(w.c.realm_id == realm_id, w.c.id == webhook_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"webhook {webhook_id!r} not found")
    return _webhook(row)


async def page(
    conn: AsyncConnection, realm_id: str, limit: int, after: str | None
) -> list[Webhook]:
    query = _joined().where(w.c.realm_id == realm_id).order_by(w.c.id).limit(limit)
    if after is not None:
        query = query.where(w.c.id > after)
    return [_webhook(row) for row in await conn.execute(query)]


async def remove(conn: AsyncConnection, realm_id: str, webhook_id: str) -> None:
    """The webhook, its cursor and its delivery log."""
    await conn.execute(delete(d).where(d.c.realm_id == realm_id, d.c.webhook_id == webhook_id))
    await conn.execute(delete(c).where(c.c.realm_id == realm_id, c.c.webhook_id == webhook_id))
    gone = await conn.execute(delete(w).where(w.c.realm_id == realm_id, w.c.id == webhook_id))
    if gone.rowcount == 0:
        raise NotFound(f"webhook {webhook_id!r} not found")


async def due(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(realm, webhook) of active webhooks, in every realm, with events past their cursor,
    due for an attempt and not leased. Reads only the cursors and realms (no secrets)."""
    query = (
        select(c.c.realm_id, c.c.webhook_id)
        .select_from(c.join(realms, realms.c.id == c.c.realm_id))
        .where(
            c.c.state == ACTIVE,
            realms.c.revision > c.c.delivered_seq,
            c.c.next_attempt_at <= now,
            or_(c.c.lease_until.is_(None), c.c.lease_until < now),
        )
        .order_by(c.c.next_attempt_at)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in await conn.execute(query)]


async def any_active(conn: AsyncConnection) -> bool:
    """Whether any realm has an active webhook (the cursors only: no secrets)."""
    query = select(c.c.webhook_id).where(c.c.state == ACTIVE).limit(1)
    return (await conn.execute(query)).first() is not None


async def claim(
    conn: AsyncConnection,
    realm_id: str,
    webhook_id: str,
    owner: str,
    now: datetime,
    until: datetime,
) -> Claim | None:
    """Take the webhook's delivery lease, if it is active and nobody holds a live one.

    One statement: of processes racing for it, exactly one gets the row back.
    """
    query = (
        update(c)
        .where(
            c.c.realm_id == realm_id,
            c.c.webhook_id == webhook_id,
            c.c.state == ACTIVE,
            or_(c.c.lease_until.is_(None), c.c.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=until)
        .returning(c.c.delivered_seq, c.c.failures, c.c.failing_since)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return Claim(realm_id, webhook_id, int(row[0]), int(row[1]), _maybe(row[2]))


def _held(claim: Claim, owner: str) -> Any:
    return and_(
        c.c.realm_id == claim.realm_id,
        c.c.webhook_id == claim.webhook_id,
        c.c.lease_owner == owner,
        c.c.state == ACTIVE,
    )


async def advance(
    conn: AsyncConnection, claim: Claim, owner: str, seq: int, until: datetime
) -> bool:
    """Everything up to `seq` is delivered: move the cursor, clear the failures, renew the
    lease. False if the lease is no longer this owner's (or the webhook went away)."""
    query = (
        update(c)
        .where(_held(claim, owner))
        .values(
            delivered_seq=dialect.of(conn).greatest(c.c.delivered_seq, seq),
            failures=0,
            failing_since=None,
            lease_until=until,
        )
    )
    return (await conn.execute(query)).rowcount == 1


async def failed(
    conn: AsyncConnection,
    claim: Claim,
    owner: str,
    failing_since: datetime,
    next_attempt_at: datetime,
) -> bool:
    """One more failure in a row: wait until `next_attempt_at`, and let the lease go."""
    query = (
        update(c)
        .where(_held(claim, owner))
        .values(
            failures=c.c.failures + 1,
            failing_since=failing_since,
            next_attempt_at=next_attempt_at,
            lease_owner=None,
            lease_until=None,
        )
    )
    return (await conn.execute(query)).rowcount == 1


async def release(conn: AsyncConnection, claim: Claim, owner: str) -> None:
    query = update(c).where(_held(claim, owner)).values(lease_owner=None, lease_until=None)
    await conn.execute(query)


async def disable(conn: AsyncConnection, claim: Claim, owner: str, now: datetime) -> bool:
    """The webhook stops being delivered (its retry horizon passed)."""
    query = (
        update(c)
        .where(_held(claim, owner))
        .values(
            state=DISABLED,
            disabled_at=now,
            failures=c.c.failures + 1,
            lease_owner=None,
            lease_until=None,
        )
    )
    return (await conn.execute(query)).rowcount == 1


async def enable(conn: AsyncConnection, realm_id: str, webhook_id: str, now: datetime) -> None:
    """Deliver again, from where its cursor stands, at once."""
    query = (
        update(c)
        .where(c.c.realm_id == realm_id, c.c.webhook_id == webhook_id)
        .values(
            state=ACTIVE,
            disabled_at=None,
            failures=0,
            failing_since=None,
            next_attempt_at=now,
        )
    )
    if (await conn.execute(query)).rowcount == 0:
        raise NotFound(f"webhook {webhook_id!r} not found")


async def record(conn: AsyncConnection, realm_id: str, attempt: Delivery) -> None:
    await conn.execute(
        insert(d).values(
            realm_id=realm_id,
            id=attempt.id,
            webhook_id=attempt.webhook_id,
            seq=attempt.seq,
            message_id=attempt.message_id,
            event_type=attempt.event_type,
            attempt=attempt.attempt,
            manual=attempt.manual,
            status_code=attempt.status_code,
            error=attempt.error,
            latency_ms=attempt.latency_ms,
            attempted_at=attempt.attempted_at,
        )
    )


async def deliveries(
    conn: AsyncConnection, realm_id: str, webhook_id: str, limit: int, before: str | None
) -> list[Delivery]:
    """The webhook's attempts, newest first."""
    query = (
        select(d)
        .where(d.c.realm_id == realm_id, d.c.webhook_id == webhook_id)
        .order_by(d.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(d.c.id < before)
    return [_delivery(row) for row in await conn.execute(query)]


async def delivery(
    conn: AsyncConnection, realm_id: str, webhook_id: str, delivery_id: str
) -> Delivery:
    query = select(d).where(
        d.c.realm_id == realm_id, d.c.webhook_id == webhook_id, d.c.id == delivery_id
    )
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"delivery {delivery_id!r} not found")
    return _delivery(row)


async def attempts(conn: AsyncConnection, realm_id: str, webhook_id: str, seq: int) -> int:
    """How many times the webhook has been sent event `seq` so far."""
    query = select(func.count()).where(
        d.c.realm_id == realm_id, d.c.webhook_id == webhook_id, d.c.seq == seq
    )
    return int((await conn.execute(query)).scalar_one())
