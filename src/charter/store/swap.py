"""A text change's locked part in one call to PostgreSQL (migrations 0006 and 0007).

Used for a PATCH that changes only the title or the body, by far the most common write:
the realm lock is taken and released inside the server instead of across round trips.
`services.writes` decides when (`available`); SQLite, and every other change, takes the
statement-by-statement path, which writes the same rows and the same event.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.domain.events import EventType
from charter.domain.versions import Content
from charter.store import dialect
from charter.store.directives import WALK_CAP, Directive, with_content
from charter.store.events import COMMITTED_KEY, Committed

# The function returns the directive as a row of the table's own type; `(s.directive).*`
# spreads it into the table's columns, whatever they are, so none is named here.
_SWAP = text(
    "SELECT s.outcome, s.seq, s.agents, (s.directive).* FROM charter_swap_content(:realm,"
    " :id, :expected, :title, :body, :hash, :author, :message, :type, :cap) AS s"
)


@dataclass(frozen=True, slots=True)
class Swapped:
    """The node as written, or None with the revision it is really at (None: it is gone)."""

    directive: Directive | None
    revision: int | None


def available(conn: AsyncConnection) -> bool:
    """Whether this database has the function (PostgreSQL); elsewhere the general path."""
    return dialect.of(conn).server_functions


async def swap_content(
    conn: AsyncConnection,
    current: Directive,
    expected_revision: int,
    content: Content,
    author: str,
    message: str | None,
) -> Swapped:
    """Lock, check, write the new version and its event; the caller commits.

    The write's time is taken inside the function, under the realm lock.
    """
    params = {
        "realm": current.realm_id,
        "id": current.id,
        "expected": expected_revision,
        "title": content.title,
        "body": content.body,
        "hash": content.hash,
        "author": author,
        "message": message,
        "type": EventType.VERSION_CREATED.value,
        "cap": WALK_CAP,
    }
    row = (await conn.execute(_SWAP, params)).one()
    if row.outcome != "ok":
        return Swapped(None, row.revision)
    agents = frozenset(row.agents)
    # New text without `{{` only removes placeholders: it cannot leave a variable undefined.
    holes = "{{" in content.body
    change = Committed(current.realm_id, row.seq, agents, may_leave_holes=holes)
    conn.info.setdefault(COMMITTED_KEY, []).append(change)
    return Swapped(with_content(row, content.title, content.body), row.revision)
