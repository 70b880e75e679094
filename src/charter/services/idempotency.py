"""Idempotent writes: claim the key, replay or refuse, or run the write and keep its response.

The record is written in the same transaction as the change it records, so a failed or
rolled-back attempt leaves nothing behind and its retry runs afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import utcnow
from charter.db.session import Database
from charter.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from charter.store import idempotency, realms
from charter.store.idempotency import Scope, Stored

log = logging.getLogger("charter.idempotency")

PURGE_INTERVAL_SECONDS = 600.0


def fingerprint(method: str, path: str, if_match: str | None, body: bytes) -> str:
    """A digest of what the request asks for: the same JSON, in any key order, matches."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted") if body else b""
    except msgspec.DecodeError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), (if_match or "").encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def replay_or_claim(conn: AsyncConnection, scope: Scope, print_: str) -> Stored | None:
    """The stored response to replay, or None when this transaction now owns the key."""
    if not await idempotency.try_lock(conn, scope):
        raise IdempotencyKeyInUse("a request with this Idempotency-Key is still in flight")
    stored = await idempotency.find(conn, scope)
    if stored is None:
        return None
    if stored.fingerprint != print_:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
    return stored


async def remember(conn: AsyncConnection, scope: Scope, stored: Stored) -> None:
    await idempotency.save(conn, scope, stored, utcnow())


async def purge_idempotency_records(db: Database, keep_hours: float) -> None:
    """Forever: drop records older than `keep_hours`, realm by realm (row-level security)."""
    while True:
        try:
            before = utcnow() - timedelta(hours=keep_hours)
            async with db.transaction() as conn:
                realm_ids = [r.id for r in await realms.page(conn, 1_000_000, None)]
            for realm_id in ["", *realm_ids]:
                async with db.transaction(realm_id) as conn:
                    await idempotency.purge(conn, realm_id, before)
        except Exception as exc:
            log.warning("idempotency purge failed (%s)", type(exc).__name__)
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)
