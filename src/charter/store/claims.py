"""Claims: who works on a directive, until when, and how it ended (§10)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware
from charter.db.tables import claims as c
from charter.db.tables import directives as d
from charter.domain.tree import Status
from charter.errors import NotFound
from charter.store import dialect

LIVE = "live"
EXPIRED = "expired"
# The partial index's own predicate, spelled as a literal: PostgreSQL matches ON CONFLICT to a
# partial index only when it can prove this WHERE implies the index's.
_LIVE_INDEX = text("state = 'live'")


@dataclass(frozen=True, slots=True)
class Claim:
    id: str
    directive_id: str
    agent_id: str
    attempt: int
    state: str
    lease_seconds: int
    created_at: datetime
    expires_at: datetime
    finished_at: datetime | None
    error_code: str | None
    result: Any


def _claim(row: Row[Any]) -> Claim:
    m = row._mapping
    return Claim(
        id=m["id"],
        directive_id=m["directive_id"],
        agent_id=m["agent_id"],
        attempt=m["attempt"],
        state=m["state"],
        lease_seconds=m["lease_seconds"],
        created_at=aware(m["created_at"]),
        expires_at=aware(m["expires_at"]),
        finished_at=None if m["finished_at"] is None else aware(m["finished_at"]),
        error_code=m["error_code"],
        result=m["result"],
    )


async def insert_live(conn: AsyncConnection, realm_id: str, values: Mapping[str, Any]) -> bool:
    """Insert a live claim unless the directive has one: the partial unique index decides,
    in this one statement. False: another claim is live."""
    statement = dialect.of(conn).insert_ignore(
        c, index=["realm_id", "directive_id"], where=_LIVE_INDEX
    )
    row = {**values, "realm_id": realm_id, "state": LIVE}
    result = await conn.execute(statement.values(**row).returning(c.c.id))
    return result.first() is not None


async def get(conn: AsyncConnection, realm_id: str, claim_id: str) -> Claim:
    query = select(c).where(c.c.realm_id == realm_id, c.c.id == claim_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"claim {claim_id!r} not found")
    return _claim(row)


async def live_for(conn: AsyncConnection, realm_id: str, directive_id: str) -> Claim | None:
    query = select(c).where(
        c.c.realm_id == realm_id, c.c.directive_id == directive_id, c.c.state == LIVE
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _claim(row)


async def last_attempt(conn: AsyncConnection, realm_id: str, directive_id: str) -> int:
    query = select(func.coalesce(func.max(c.c.attempt), 0)).where(
        c.c.realm_id == realm_id, c.c.directive_id == directive_id
    )
    return int((await conn.execute(query)).scalar_one())


async def extend(
    conn: AsyncConnection, realm_id: str, claim_id: str, now: datetime, expires_at: datetime
) -> Claim | None:
    """Move a live, unexpired lease's expiry; None if it is not live at `now`."""
    query = (
        update(c)
        .where(
            c.c.realm_id == realm_id,
            c.c.id == claim_id,
            c.c.state == LIVE,
            c.c.expires_at > now,
        )
        .values(expires_at=expires_at)
        .returning(*c.c)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _claim(row)


async def end(
    conn: AsyncConnection,
    realm_id: str,
    claim_id: str,
    state: str,
    now: datetime,
    error_code: str | None = None,
    result: Any = None,
) -> Claim | None:
    """End a live claim in `state`; None if it was no longer live (someone else ended it)."""
    query = (
        update(c)
        .where(c.c.realm_id == realm_id, c.c.id == claim_id, c.c.state == LIVE)
        .values(state=state, finished_at=now, error_code=error_code, result=result)
        .returning(*c.c)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _claim(row)


async def expire(
    conn: AsyncConnection, realm_id: str, claim_id: str, now: datetime
) -> Claim | None:
    """Release a live claim whose lease ran out by `now`: the one statement that makes
    expiry happen once, whichever process runs it. None: renewed, ended, or already gone."""
    query = (
        update(c)
        .where(
            c.c.realm_id == realm_id,
            c.c.id == claim_id,
            c.c.state == LIVE,
            c.c.expires_at <= now,
        )
        .values(state=EXPIRED, finished_at=now)
        .returning(*c.c)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _claim(row)


async def page(
    conn: AsyncConnection,
    realm_id: str,
    limit: int,
    after: str | None,
    agent_id: str | None = None,
    state: str | None = None,
) -> list[Claim]:
    query = select(c).where(c.c.realm_id == realm_id).order_by(c.c.id).limit(limit)
    if agent_id is not None:
        query = query.where(c.c.agent_id == agent_id)
    if state is not None:
        query = query.where(c.c.state == state)
    if after is not None:
        query = query.where(c.c.id > after)
    return [_claim(row) for row in await conn.execute(query)]


async def live_by_agent(
    conn: AsyncConnection, realm_id: str, agent_ids: list[str]
) -> dict[str, list[Claim]]:
    """Each agent's live claims (the agents list shows them)."""
    if not agent_ids:
        return {}
    query = (
        select(c)
        .where(c.c.realm_id == realm_id, c.c.agent_id.in_(agent_ids), c.c.state == LIVE)
        .order_by(c.c.id)
    )
    out: dict[str, list[Claim]] = {}
    for row in await conn.execute(query):
        claim = _claim(row)
        out.setdefault(claim.agent_id, []).append(claim)
    return out


def _claimable_by(realm_id: str, agent_id: str) -> Any:
    live = exists().where(c.c.realm_id == realm_id, c.c.directive_id == d.c.id, c.c.state == LIVE)
    return and_(
        d.c.realm_id == realm_id,
        d.c.owner_agent_id == agent_id,
        d.c.status == Status.ACTIVE.value,
        # A deactivated directive has no work to offer (services/claims.py refuses it).
        d.c.active_version.is_not(None),
        ~live,
    )


async def claimable(
    conn: AsyncConnection, realm_id: str, agent_id: str, now: datetime, limit: int
) -> list[str]:
    """The agent's directives it may claim now: owned, active (and not deactivated), due and
    without a live claim."""
    query = (
        select(d.c.id)
        .where(
            _claimable_by(realm_id, agent_id),
            or_(d.c.not_before.is_(None), d.c.not_before <= now),
        )
        .order_by(d.c.id)
        .limit(limit)
    )
    return [row[0] for row in await conn.execute(query)]


async def next_due(
    conn: AsyncConnection, realm_id: str, agent_id: str, now: datetime
) -> datetime | None:
    """When the agent's next not-yet-due directive becomes claimable, if any."""
    query = select(func.min(d.c.not_before)).where(
        _claimable_by(realm_id, agent_id), d.c.not_before > now
    )
    found = (await conn.execute(query)).scalar_one_or_none()
    return None if found is None else aware(found)
