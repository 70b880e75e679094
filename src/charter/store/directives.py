"""Directive rows: reads with their active content, CAS writes, and guarded tree walks."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    bindparam,
    case,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware
from charter.db.tables import directive_versions as versions
from charter.db.tables import directives as d
from charter.domain.rollouts import Rollout
from charter.domain.tree import OPEN, InjectionMode, Level, Priority, Status, walk_up
from charter.errors import AlreadyExists, NotFound

# A hard bound on every recursive walk, whatever the configured depth limit: corrupt rows
# (a cycle written straight into the table) can never make a query or a loop run unbounded.
WALK_CAP = 256


@dataclass(frozen=True, slots=True)
class Directive:
    """A directive with the title and body of its active version (the latest if deactivated)."""

    realm_id: str
    id: str
    key: str | None
    level: Level
    parent_id: str | None
    status: Status
    priority: Priority
    owner_agent_id: str | None
    injection_mode: InjectionMode
    metadata: dict[str, Any]
    revision: int
    active_version: int | None
    latest_version: int
    created_at: datetime
    updated_at: datetime
    rollout: Rollout | None
    not_before: datetime | None
    last_failure: dict[str, Any] | None
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class Node:
    """A node's place in the tree, without its text."""

    id: str
    parent_id: str | None
    level: Level
    status: Status
    owner_agent_id: str | None
    depth: int


@dataclass(frozen=True, slots=True)
class ListFilters:
    level: Level | None = None
    status: Status | None = None
    parent_id: str | None = None
    owner_agent_id: str | None = None
    priority: Priority | None = None
    key: str | None = None
    roots: bool = False


# CASE, not COALESCE: under row-level security PostgreSQL treats COALESCE as possibly leaky
# and will not use it in an index condition, so every read scanned all of a directive's
# versions. The join is outer, though every directive has its content version, because the
# planner underestimates the inner join and picks a parallel plan (a worker start-up of
# several milliseconds) for a page of 50; rows without content are dropped in `_content`.
_content_version = case(
    (d.c.active_version.is_(None), d.c.latest_version), else_=d.c.active_version
)
_WITH_CONTENT = select(d, versions.c.title, versions.c.body).outerjoin(
    versions,
    and_(
        versions.c.realm_id == d.c.realm_id,
        versions.c.directive_id == d.c.id,
        versions.c.version == _content_version,
    ),
)


def _content(rows: Iterable[Row[Any]]) -> list[Directive]:
    """Directives from `_WITH_CONTENT` rows, as an inner join would have given them."""
    return [_directive(row, row.title, row.body) for row in rows if row.title is not None]


def rollout_of(value: Any) -> Rollout | None:
    """A stored rollout (a JSON value, or its text where a raw row was not typed)."""
    if value is None:
        return None
    return Rollout.from_json(json.loads(value) if isinstance(value, str) else value)


# How a column's stored value becomes the record's; a column not named here is taken as is.
_FROM_COLUMN: dict[str, Callable[[Any], Any]] = {
    "level": Level,
    "status": Status,
    "priority": Priority,
    "injection_mode": InjectionMode,
    "metadata": dict,
    "created_at": aware,
    "updated_at": aware,
    "rollout": rollout_of,
    "not_before": lambda value: None if value is None else aware(value),
}
# Every Directive field but the text is a column of the same name: derived, not listed.
_COLUMNS = tuple(f.name for f in fields(Directive) if f.name not in ("title", "body"))


def _directive(row: Row[Any] | Mapping[str, Any], title: str, body: str) -> Directive:
    m = row._mapping if isinstance(row, Row) else row
    values = {name: _FROM_COLUMN.get(name, _same)(m[name]) for name in _COLUMNS}
    return Directive(**values, title=title, body=body)


def _same(value: Any) -> Any:
    return value


# Built once: SQLAlchemy keeps a statement's cache key on the statement, so the read every
# write begins with costs no statement building and no cache-key walk (docs/benchmarks.md).
_GET = _WITH_CONTENT.where(d.c.realm_id == bindparam("realm"), d.c.id == bindparam("id"))


async def get(conn: AsyncConnection, realm_id: str, directive_id: str) -> Directive:
    found = _content(await conn.execute(_GET, {"realm": realm_id, "id": directive_id}))
    if not found:
        raise NotFound(f"directive {directive_id!r} not found")
    return found[0]


async def revision_of(conn: AsyncConnection, realm_id: str, directive_id: str) -> int | None:
    query = select(d.c.revision).where(d.c.realm_id == realm_id, d.c.id == directive_id)
    return (await conn.execute(query)).scalar_one_or_none()


async def revision_or_404(conn: AsyncConnection, realm_id: str, directive_id: str) -> int:
    revision = await revision_of(conn, realm_id, directive_id)
    if revision is None:
        raise NotFound(f"directive {directive_id!r} not found")
    return revision


async def insert_row(conn: AsyncConnection, values: Mapping[str, Any]) -> None:
    # No savepoint: a refused write ends its transaction anyway (and a savepoint costs two
    # round trips on every write).
    try:
        await conn.execute(insert(d).values(**values))
    except IntegrityError as exc:
        if "uq_directives_realm_id_key" in str(exc.orig) or "directives.key" in str(exc.orig):
            raise AlreadyExists(f"key {values['key']!r} is already used in this realm") from exc
        raise


async def compare_and_swap(
    conn: AsyncConnection,
    realm_id: str,
    directive_id: str,
    expected_revision: int,
    values: Mapping[str, Any],
) -> Row[Any] | None:
    """The CAS write: one statement that checks the revision and raises it. None: stale."""
    params = {f"new_{name}": value for name, value in values.items()}
    params.update(at_realm=realm_id, at_id=directive_id, expected=expected_revision)
    try:
        return (await conn.execute(_swap_statement(tuple(values)), params)).first()
    except IntegrityError as exc:
        if "key" in values and (
            "uq_directives_realm_id_key" in str(exc.orig) or "directives.key" in str(exc.orig)
        ):
            raise AlreadyExists(f"key {values['key']!r} is already used in this realm") from exc
        raise


@functools.lru_cache(maxsize=256)
def _swap_statement(names: tuple[str, ...]) -> Any:
    """The CAS statement for the columns `names`, their values as parameters `new_<name>`:
    built once for each set of columns a write changes (a text change's is always the same),
    so SQLAlchemy neither builds it nor walks it for its cache key again."""
    new = {name: bindparam(f"new_{name}", type_=d.c[name].type) for name in names}
    return (
        update(d)
        .where(
            d.c.realm_id == bindparam("at_realm"),
            d.c.id == bindparam("at_id"),
            d.c.revision == bindparam("expected"),
        )
        .values(**new, revision=d.c.revision + 1)
        .returning(*d.c)
    )


def with_content(row: Row[Any] | Mapping[str, Any], title: str, body: str) -> Directive:
    return _directive(row, title, body)


async def page(
    conn: AsyncConnection, realm_id: str, filters: ListFilters, limit: int, after: str | None
) -> list[Directive]:
    query = _WITH_CONTENT.where(d.c.realm_id == realm_id).order_by(d.c.id).limit(limit)
    conditions: list[ColumnElement[bool]] = []
    if filters.level is not None:
        conditions.append(d.c.level == filters.level.value)
    if filters.status is not None:
        conditions.append(d.c.status == filters.status.value)
    if filters.priority is not None:
        conditions.append(d.c.priority == filters.priority.value)
    if filters.parent_id is not None:
        conditions.append(d.c.parent_id == filters.parent_id)
    if filters.owner_agent_id is not None:
        conditions.append(d.c.owner_agent_id == filters.owner_agent_id)
    if filters.key is not None:
        conditions.append(d.c.key == filters.key)
    if filters.roots:
        conditions.append(d.c.parent_id.is_(None))
    if after is not None:
        conditions.append(d.c.id > after)
    return _content(await conn.execute(query.where(*conditions)))


async def ancestry(conn: AsyncConnection, realm_id: str, directive_id: str) -> list[Directive]:
    """[self, parent, …, root], in one recursive query, cycle- and depth-guarded."""
    base = (
        select(d.c.id, d.c.parent_id, literal(1).label("step"))
        .where(d.c.realm_id == realm_id, d.c.id == directive_id)
        .cte("chain", recursive=True)
    )
    up = (
        select(d.c.id, d.c.parent_id, (base.c.step + 1).label("step"))
        .join(base, and_(d.c.realm_id == realm_id, d.c.id == base.c.parent_id))
        .where(base.c.step < WALK_CAP)
    )
    chain = base.union_all(up)
    query = _WITH_CONTENT.where(
        d.c.realm_id == realm_id, d.c.id.in_(select(chain.c.id).scalar_subquery())
    )
    by_id = {node.id: node for node in _content(await conn.execute(query))}
    if directive_id not in by_id:
        raise NotFound(f"directive {directive_id!r} not found")
    parents = {node.id: node.parent_id for node in by_id.values()}
    return [by_id[node] for node in walk_up(directive_id, parents, WALK_CAP)]


def _below(realm_id: Any, directive_id: Any) -> Any:
    """A recursive CTE of the node and its descendants, depth-capped against corrupt cycles."""
    columns = (d.c.id, d.c.parent_id, d.c.level, d.c.status, d.c.owner_agent_id)
    base = (
        select(*columns, literal(0).label("depth"))
        .where(d.c.realm_id == realm_id, d.c.id == directive_id)
        .cte("below", recursive=True)
    )
    down = (
        select(*columns, (base.c.depth + 1).label("depth"))
        .join(base, and_(d.c.realm_id == realm_id, d.c.parent_id == base.c.id))
        .where(base.c.depth < WALK_CAP)
    )
    return base.union_all(down)


# Built once, as `_GET` is: every write reads its subtree.
_SUBTREE = select(_below(bindparam("realm"), bindparam("id")))


async def subtree(conn: AsyncConnection, realm_id: str, directive_id: str) -> list[Node]:
    """The node and its descendants, without text; `depth` counts from the node (0)."""
    nodes: dict[str, Node] = {}
    for row in await conn.execute(_SUBTREE, {"realm": realm_id, "id": directive_id}):
        # Corrupt data (a cycle) repeats nodes at growing depths: keep each node once.
        if row.id not in nodes:
            nodes[row.id] = Node(
                id=row.id,
                parent_id=row.parent_id,
                level=Level(row.level),
                status=Status(row.status),
                owner_agent_id=row.owner_agent_id,
                depth=row.depth,
            )
    return list(nodes.values())


async def subtree_with_content(
    conn: AsyncConnection, realm_id: str, directive_id: str
) -> list[Directive]:
    below = _below(realm_id, directive_id)
    query = _WITH_CONTENT.where(
        d.c.realm_id == realm_id, d.c.id.in_(select(below.c.id).scalar_subquery())
    )
    return _content(await conn.execute(query))


async def all_in_realm(conn: AsyncConnection, realm_id: str) -> list[Directive]:
    query = _WITH_CONTENT.where(d.c.realm_id == realm_id).order_by(d.c.id)
    return _content(await conn.execute(query))


async def set_status(
    conn: AsyncConnection,
    realm_id: str,
    ids: Sequence[str],
    status: Status,
    now: datetime,
) -> list[Row[Any]]:
    """Cascade a status onto open nodes; each one's revision rises."""
    if not ids:
        return []
    query = (
        update(d)
        .where(
            d.c.realm_id == realm_id,
            d.c.id.in_(ids),
            d.c.status.in_(sorted(s.value for s in OPEN)),
        )
        .values(status=status.value, revision=d.c.revision + 1, updated_at=now)
        .returning(d.c.id, d.c.revision, d.c.active_version, d.c.status)
    )
    return list(await conn.execute(query))


def owners(nodes: Iterable[Node]) -> set[str]:
    return {node.owner_agent_id for node in nodes if node.owner_agent_id is not None}
