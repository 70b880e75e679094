"""A text change's locked part in one call to PostgreSQL (migration 0006).

Used for a PATCH that changes only the title or the body, by far the most common write:
the realm lock is taken and released inside the server instead of across round trips.
`services.writes` decides when; SQLite, and every other change, takes the statement-by-
statement path, which writes the same rows and the same event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import column, text
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.domain.versions import Content
from charter.store.directives import WALK_CAP, Directive, with_content
from charter.store.events import COMMITTED_KEY, Committed

_SWAP = text(
    "SELECT * FROM charter_swap_content(:realm, :id, :expected, :title, :body, :hash,"
    " :author, :message, :now, :cap)"
).columns(
    *(
        column(name)
        for name in (
            "outcome",
            "revision",
            "seq",
            "agents",
            "key",
            "level",
            "parent_id",
            "status",
            "priority",
            "owner_agent_id",
            "injection_mode",
            "metadata",
            "active_version",
            "latest_version",
            "created_at",
            "updated_at",
        )
    )
)


@dataclass(frozen=True, slots=True)
class Swapped:
    """The node as written, or None with the revision it is really at (None: it is gone)."""

    directive: Directive | None
    revision: int | None


async def swap_content(
    conn: AsyncConnection,
    current: Directive,
    expected_revision: int,
    content: Content,
    author: str,
    message: str | None,
    now: datetime,
) -> Swapped:
    """Lock, check, write the new version and its event; the caller commits."""
    params = {
        "realm": current.realm_id,
        "id": current.id,
        "expected": expected_revision,
        "title": content.title,
        "body": content.body,
        "hash": content.hash,
        "author": author,
        "message": message,
        "now": now,
        "cap": WALK_CAP,
    }
    row = (await conn.execute(_SWAP, params)).one()
    if row.outcome != "ok":
        return Swapped(None, row.revision)
    fields = dict(row._mapping)
    fields.update(realm_id=current.realm_id, id=current.id)
    agents = frozenset(row.agents)
    conn.info.setdefault(COMMITTED_KEY, []).append(Committed(current.realm_id, row.seq, agents))
    return Swapped(with_content(fields, content.title, content.body), row.revision)
