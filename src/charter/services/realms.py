"""Realm writes: the API creates realms through here, never through the store directly."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import utcnow
from charter.store import realms
from charter.store.realms import Realm


async def create(conn: AsyncConnection, realm_id: str, name: str) -> Realm:
    return await realms.create(conn, realm_id, name, utcnow())
