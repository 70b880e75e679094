"""Composition reads: an agent's owned nodes and their ancestry in one query; records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, column, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware
from charter.db.tables import agent_profiles as ap
from charter.db.tables import composition_agents as ca
from charter.db.tables import compositions as c
from charter.db.tables import directive_versions as v
from charter.db.tables import directives as d
from charter.db.tables import realm_variables as rv
from charter.db.tables import realms
from charter.domain.composition import TreeNode
from charter.domain.tree import InjectionMode, Level, Priority, Status
from charter.errors import NotFound
from charter.store import dialect
from charter.store.directives import rollout_of


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything composition needs, read in one statement (so from one snapshot)."""

    realm_revision: int
    nodes: list[TreeNode]
    bodies: dict[str, str]
    # Template variables' values (DESIGN §9): the agent's profile and the realm's defaults.
    profile: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)


def _owned_and_ancestors(realm_id: str, agent_id: str) -> Any:
    # UNION (not UNION ALL) keeps each (id, parent_id) once, so the recursion ends even on
    # rows corrupted into a cycle.
    base = (
        select(d.c.id, d.c.parent_id)
        .where(d.c.realm_id == realm_id, d.c.owner_agent_id == agent_id)
        .cte("chain", recursive=True)
    )
    up = select(d.c.id, d.c.parent_id).join(
        base, and_(d.c.realm_id == realm_id, d.c.id == base.c.parent_id)
    )
    return base.union(up)


# The profile and the defaults ride along each row, in the same statement. The subqueries run
# once the function has returned its rows, so after it has set the realm (row-level security).
_ROWS_FUNCTION = text(
    "SELECT r.*,"
    " (SELECT p.variables FROM agent_profiles p"
    "  WHERE p.realm_id = :realm AND p.agent_id = :agent) AS profile,"
    " (SELECT d.variables FROM realm_variables d WHERE d.realm_id = :realm) AS defaults"
    " FROM charter_composition_rows(:realm, :agent) AS r"
).columns(
    column("id"),
    column("parent_id"),
    column("level"),
    column("status"),
    column("priority"),
    column("owner_agent_id"),
    column("injection_mode"),
    column("created_at"),
    column("revision"),
    column("active_version"),
    column("title"),
    column("body"),
    column("realm_revision"),
    column("rollout"),
    column("candidate_title"),
    column("candidate_body"),
    column("profile"),
    column("defaults"),
)


async def snapshot(conn: AsyncConnection, realm_id: str, agent_id: str) -> Snapshot:
    """The agent's owned nodes, their ancestors, and their active text: one statement.

    On PostgreSQL a function (migration 0004) sets the realm and runs the same query, so a
    connection outside any transaction reads it in one round trip.
    """
    if dialect.of(conn).server_functions:
        params = {"realm": realm_id, "agent": agent_id}
        return _snapshot(agent_id, list(await conn.execute(_ROWS_FUNCTION, params)))
    return _snapshot(agent_id, list(await conn.execute(_snapshot_query(realm_id, agent_id))))


# The same function for each of many agents, in one statement: each call sets the realm and
# reads its rows and the realm revision in one snapshot, so each agent's stamp matches its rows.
_ROWS_FOR_AGENTS = text(
    "SELECT a.agent, r.*,"
    " (SELECT p.variables FROM agent_profiles p"
    "  WHERE p.realm_id = :realm AND p.agent_id = a.agent) AS profile,"
    " (SELECT d.variables FROM realm_variables d WHERE d.realm_id = :realm) AS defaults"
    " FROM unnest(CAST(:agents AS text[])) AS a(agent),"
    " LATERAL charter_composition_rows(:realm, a.agent) AS r"
).columns(column("agent"), *(column(c.key) for c in _ROWS_FUNCTION.selected_columns))


async def snapshots(
    conn: AsyncConnection, realm_id: str, agent_ids: Sequence[str]
) -> dict[str, Snapshot | NotFound]:
    """`snapshot` for each of several agents; NotFound for an agent that owns nothing here.

    On PostgreSQL one statement (one round trip) for them all; elsewhere one query each, on
    the caller's connection.
    """
    out: dict[str, Snapshot | NotFound] = {}
    if not dialect.of(conn).server_functions:
        for agent in agent_ids:
            try:
                out[agent] = await snapshot(conn, realm_id, agent)
            except NotFound as exc:
                out[agent] = exc
        return out
    rows: dict[str, list[Row[Any]]] = {agent: [] for agent in agent_ids}
    params = {"realm": realm_id, "agents": list(agent_ids)}
    for row in await conn.execute(_ROWS_FOR_AGENTS, params):
        rows[row.agent].append(row)
    for agent, mine in rows.items():
        try:
            out[agent] = _snapshot(agent, mine)
        except NotFound as exc:
            out[agent] = exc
    return out


def _snapshot_query(realm_id: str, agent_id: str) -> Any:
    chain = _owned_and_ancestors(realm_id, agent_id)
    cv = v.alias("cv")
    realm_revision = select(realms.c.revision).where(realms.c.id == realm_id).scalar_subquery()
    profile = (
        select(ap.c.variables)
        .where(ap.c.realm_id == realm_id, ap.c.agent_id == agent_id)
        .scalar_subquery()
    )
    defaults = select(rv.c.variables).where(rv.c.realm_id == realm_id).scalar_subquery()
    query = (
        select(
            d.c.id,
            d.c.parent_id,
            d.c.level,
            d.c.status,
            d.c.priority,
            d.c.owner_agent_id,
            d.c.injection_mode,
            d.c.created_at,
            d.c.revision,
            d.c.active_version,
            v.c.title,
            v.c.body,
            realm_revision.label("realm_revision"),
            d.c.rollout,
            cv.c.title.label("candidate_title"),
            cv.c.body.label("candidate_body"),
            profile.label("profile"),
            defaults.label("defaults"),
        )
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
        .where(d.c.realm_id == realm_id, d.c.id.in_(select(chain.c.id).scalar_subquery()))
    )
    return query


def _snapshot(agent_id: str, rows: list[Row[Any]]) -> Snapshot:
    if not any(row.owner_agent_id == agent_id for row in rows):
        raise NotFound(f"agent {agent_id!r} owns no directive in this realm")
    nodes = [
        TreeNode(
            id=row.id,
            parent_id=row.parent_id,
            level=Level(row.level),
            status=Status(row.status),
            priority=Priority(row.priority),
            owner_agent_id=row.owner_agent_id,
            injection_mode=InjectionMode(row.injection_mode),
            created_at=aware(row.created_at),
            revision=row.revision,
            version=row.active_version,
            title=row.title,
            body=row.body,
            rollout=rollout_of(row.rollout),
            candidate_title=row.candidate_title,
            candidate_body=row.candidate_body,
        )
        for row in rows
    ]
    bodies = {row.id: row.body for row in rows if row.body is not None}
    first = rows[0]
    return Snapshot(
        int(first.realm_revision), nodes, bodies, _map(first.profile), _map(first.defaults)
    )


def _map(raw: object) -> dict[str, str]:
    """A variables column as read: JSON text through a raw statement, a dict otherwise."""
    if raw is None:
        return {}
    value: Any = json.loads(raw) if isinstance(raw, str | bytes) else raw
    return {str(k): str(val) for k, val in dict(value).items()}


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    agent_id: str
    renderer_version: int
    injection_mode: InjectionMode
    layers: list[dict[str, Any]]
    created_at: datetime
    # The values a template's placeholders took; None when the text is no template.
    variables: dict[str, str] | None = None


async def record(conn: AsyncConnection, realm_id: str, rec: Record) -> None:
    """Keep a composition resolvable forever, by every agent whose prompt it is; the first
    record of an id wins, and each later agent is added to it."""
    await record_many(conn, realm_id, [rec])


async def record_many(conn: AsyncConnection, realm_id: str, recs: Sequence[Record]) -> None:
    """`record` for several compositions: two statements (each batched by the driver)."""
    if not recs:
        return
    values = [
        {
            "realm_id": realm_id,
            "id": rec.id,
            "agent_id": rec.agent_id,
            "renderer_version": rec.renderer_version,
            "injection_mode": rec.injection_mode.value,
            "layers": rec.layers,
            "created_at": rec.created_at,
            "variables": rec.variables,
        }
        for rec in recs
    ]
    # Parameters apart from the statement: one cached compilation whatever the count (a
    # multi-row VALUES would be compiled afresh for each count, at a cost that grows with it).
    await conn.execute(dialect.of(conn).insert_ignore(c), values)
    pairs = [
        {"realm_id": realm_id, "composition_id": rec.id, "agent_id": rec.agent_id} for rec in recs
    ]
    await conn.execute(dialect.of(conn).insert_ignore(ca), pairs)


async def belongs(conn: AsyncConnection, realm_id: str, composition_id: str, agent_id: str) -> bool:
    """Whether the composition is or was the agent's own prompt."""
    query = select(ca.c.agent_id).where(
        ca.c.realm_id == realm_id, ca.c.composition_id == composition_id, ca.c.agent_id == agent_id
    )
    return (await conn.execute(query)).first() is not None


async def get(conn: AsyncConnection, realm_id: str, composition_id: str) -> Record:
    query = select(c).where(c.c.realm_id == realm_id, c.c.id == composition_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"composition {composition_id!r} not found")
    return Record(
        id=row.id,
        agent_id=row.agent_id,
        renderer_version=row.renderer_version,
        injection_mode=InjectionMode(row.injection_mode),
        layers=list(row.layers),
        created_at=aware(row.created_at),
        variables=None if row.variables is None else dict(row.variables),
    )


# (directive_id, version) -> (title, body)
Texts = dict[tuple[str, int], tuple[str, str]]


async def texts(conn: AsyncConnection, realm_id: str, pairs: list[tuple[str, int]]) -> Texts:
    """(directive_id, version) -> (title, body) for the given immutable versions."""
    if not pairs:
        return {}
    query = select(v.c.directive_id, v.c.version, v.c.title, v.c.body).where(
        v.c.realm_id == realm_id, tuple_(v.c.directive_id, v.c.version).in_(pairs)
    )
    rows = await conn.execute(query)
    return {(row.directive_id, row.version): (row.title, row.body) for row in rows}


async def agents(
    conn: AsyncConnection, realm_id: str, limit: int, after: str | None
) -> list[tuple[str, int, int]]:
    """(agent_id, owned directives, owned active directives), by agent id."""
    active = func.count().filter(d.c.status == Status.ACTIVE.value)
    query = (
        select(d.c.owner_agent_id, func.count(), active)
        .where(d.c.realm_id == realm_id, d.c.owner_agent_id.is_not(None))
        .group_by(d.c.owner_agent_id)
        .order_by(d.c.owner_agent_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(d.c.owner_agent_id > after)
    return [(row[0], int(row[1]), int(row[2] or 0)) for row in await conn.execute(query)]
