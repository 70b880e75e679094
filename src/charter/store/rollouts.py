"""Rollout reads and outcome rows: the running rollouts among some directives, a realm's
guarded rollouts, and the outcomes each arm collected (the rollout itself is a column of the
directive row, written by its CAS)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.db.tables import directives as d
from charter.db.tables import rollout_outcomes as o
from charter.domain.rollouts import Rollout
from charter.store.directives import rollout_of


@dataclass(frozen=True, slots=True)
class Running:
    directive_id: str
    revision: int
    active_version: int | None
    rollout: Rollout


async def running(
    conn: AsyncConnection, realm_id: str, directive_ids: Sequence[str] | None = None
) -> list[Running]:
    """The running rollouts of the given directives (of the whole realm when None)."""
    query = select(d.c.id, d.c.revision, d.c.active_version, d.c.rollout).where(
        d.c.realm_id == realm_id, d.c.rollout.is_not(None)
    )
    if directive_ids is not None:
        if not directive_ids:
            return []
        query = query.where(d.c.id.in_(list(directive_ids)))
    out: list[Running] = []
    for row in await conn.execute(query):
        rollout = rollout_of(row.rollout)
        if rollout is not None:  # a JSON null is not a rollout either
            out.append(Running(row.id, row.revision, row.active_version, rollout))
    return out


@dataclass(frozen=True, slots=True)
class NewOutcome:
    rollout_id: str
    id: str
    directive_id: str
    arm: str
    metric: str
    value: float
    agent_id: str
    composition_id: str
    created_at: datetime


async def add_outcomes(conn: AsyncConnection, realm_id: str, rows: Sequence[NewOutcome]) -> None:
    if not rows:
        return
    values = [
        {
            "realm_id": realm_id,
            "rollout_id": r.rollout_id,
            "id": r.id,
            "directive_id": r.directive_id,
            "arm": r.arm,
            "metric": r.metric,
            "value": r.value,
            "agent_id": r.agent_id,
            "composition_id": r.composition_id,
            "created_at": r.created_at,
        }
        for r in rows
    ]
    await conn.execute(insert(o), values)


async def values(
    conn: AsyncConnection, realm_id: str, rollout_id: str, metric: str | None = None
) -> dict[str, dict[str, list[float]]]:
    """metric -> arm -> the values recorded, for one rollout (one metric when named), in the
    order they arrived (outcome ids are time-ordered)."""
    query = (
        select(o.c.metric, o.c.arm, o.c.value)
        .where(o.c.realm_id == realm_id, o.c.rollout_id == rollout_id)
        .order_by(o.c.id)
    )
    if metric is not None:
        query = query.where(o.c.metric == metric)
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in await conn.execute(query):
        out[row.metric][row.arm].append(float(row.value))
    return {name: dict(arms) for name, arms in out.items()}
