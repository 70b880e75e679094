"""Template variables' values: an agent's profile and a realm's defaults (DESIGN §9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware
from charter.db.tables import agent_profiles as p
from charter.db.tables import directive_versions as v
from charter.db.tables import directives as d
from charter.db.tables import realm_variables as rv


@dataclass(frozen=True, slots=True)
class Variables:
    """A name -> value map under its revision (0: never written)."""

    revision: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    updated_at: datetime | None = None


def _of(row: Any) -> Variables:
    if row is None:
        return Variables()
    return Variables(row.revision, dict(row.variables), aware(row.updated_at))


async def profile(conn: AsyncConnection, realm_id: str, agent_id: str) -> Variables:
    query = select(p).where(p.c.realm_id == realm_id, p.c.agent_id == agent_id)
    return _of((await conn.execute(query)).first())


async def defaults(conn: AsyncConnection, realm_id: str) -> Variables:
    query = select(rv).where(rv.c.realm_id == realm_id)
    return _of((await conn.execute(query)).first())


async def _put(
    conn: AsyncConnection,
    table: Table,
    key: dict[str, str],
    current: Variables,
    variables: dict[str, str],
    now: datetime,
) -> Variables:
    """Write the map at `current.revision + 1`; the caller holds the realm lock and has
    checked the revision, so the row cannot have moved since `current` was read."""
    revision = current.revision + 1
    values = {"revision": revision, "variables": variables, "updated_at": now}
    if current.revision == 0:
        await conn.execute(table.insert().values(**key, **values))
    else:
        where = [table.c[name] == value for name, value in key.items()]
        await conn.execute(update(table).where(*where).values(**values))
    return Variables(revision, dict(variables), now)


async def put_profile(
    conn: AsyncConnection,
    realm_id: str,
    agent_id: str,
    current: Variables,
    variables: dict[str, str],
    now: datetime,
) -> Variables:
    key = {"realm_id": realm_id, "agent_id": agent_id}
    return await _put(conn, p, key, current, variables, now)


async def put_defaults(
    conn: AsyncConnection,
    realm_id: str,
    current: Variables,
    variables: dict[str, str],
    now: datetime,
) -> Variables:
    return await _put(conn, rv, {"realm_id": realm_id}, current, variables, now)


async def nodes_using(conn: AsyncConnection, realm_id: str, names: set[str]) -> list[str]:
    """Directives whose active or rollout-candidate body may use one of `names`: a superset
    (a text match), which composition then makes exact."""
    if not names:
        return []
    cv = v.alias("cv")
    like_active = or_(
        *(v.c.body.contains("{{" + name + "}}", autoescape=True) for name in sorted(names))
    )
    like_candidate = or_(
        *(cv.c.body.contains("{{" + name + "}}", autoescape=True) for name in sorted(names))
    )
    query = (
        select(d.c.id)
        .select_from(d)
        .outerjoin(
            v,
            and_(
                v.c.realm_id == d.c.realm_id,
                v.c.directive_id == d.c.id,
                v.c.version == d.c.active_version,
            ),
        )
        .outerjoin(
            cv,
            and_(
                cv.c.realm_id == d.c.realm_id,
                cv.c.directive_id == d.c.id,
                cv.c.version == d.c.rollout["version"].as_integer(),
            ),
        )
        .where(d.c.realm_id == realm_id, or_(like_active, like_candidate))
    )
    return [row.id for row in await conn.execute(query)]
