"""Immutable versions: inserted once, never updated or deleted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import aware
from charter.db.tables import directive_versions as v
from charter.domain.versions import Content
from charter.errors import NotFound

# Version numbers are INTEGER columns: a number past this cannot exist, and sending one to the
# driver would fail as an overflow (a 500) instead of finding nothing.
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Version:
    directive_id: str
    version: int
    title: str
    body: str
    content_hash: str
    author: str
    message: str | None
    based_on: int | None
    created_at: datetime

    @property
    def content(self) -> Content:
        return Content(self.title, self.body)


_INSERT = insert(v)  # built once; its values are the parameters


async def add(conn: AsyncConnection, realm_id: str, version: Version) -> None:
    """Insert a version; the primary key (realm, directive, version) refuses a duplicate."""
    await conn.execute(
        _INSERT,
        {
            "realm_id": realm_id,
            "directive_id": version.directive_id,
            "version": version.version,
            "title": version.title,
            "body": version.body,
            "content_hash": version.content_hash,
            "author": version.author,
            "message": version.message,
            "based_on": version.based_on,
            "created_at": version.created_at,
        },
    )


def _version(row: object) -> Version:
    m = row._mapping  # type: ignore[attr-defined]
    return Version(
        directive_id=m["directive_id"],
        version=m["version"],
        title=m["title"],
        body=m["body"],
        content_hash=m["content_hash"],
        author=m["author"],
        message=m["message"],
        based_on=m["based_on"],
        created_at=aware(m["created_at"]),
    )


async def get(conn: AsyncConnection, realm_id: str, directive_id: str, number: int) -> Version:
    query = select(v).where(
        v.c.realm_id == realm_id, v.c.directive_id == directive_id, v.c.version == number
    )
    row = (await conn.execute(query)).first() if 1 <= number <= MAX_VERSION else None
    if row is None:
        raise NotFound(f"version {number} of directive {directive_id!r} not found")
    return _version(row)


async def page(
    conn: AsyncConnection, realm_id: str, directive_id: str, limit: int, before: int | None
) -> list[Version]:
    """Newest first; `before` is the keyset cursor (a version number)."""
    query = (
        select(v)
        .where(v.c.realm_id == realm_id, v.c.directive_id == directive_id)
        .order_by(v.c.version.desc())
        .limit(limit)
    )
    if before is not None and before <= MAX_VERSION:  # past it, every version is before
        query = query.where(v.c.version < before)
    return [_version(row) for row in await conn.execute(query)]
