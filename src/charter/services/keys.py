"""API keys: minting, revoking, and the per-process keyring that checks them.

A key check must not cost a database round trip on the hot read path, so the keyring caches
what it has looked up. Revocation drops the key here at once and, through the bus, in every
other process; while the bus is not coherent (Redis unreachable) the keyring asks the
database every time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import utcnow
from charter.db.session import Database
from charter.domain.access import ALL_REALMS, Caller, Role
from charter.errors import InvalidRequest
from charter.ids import new_id
from charter.store import keys, sessions
from charter.store.keys import Key

log = logging.getLogger("charter.keys")

SECRET_PREFIX = "chk_"
BOOTSTRAP_KEY_ID = "bootstrap"
SESSION_PREFIX = "ses_"  # console session ids (services/sessions.py), held beside key ids
_NEGATIVE_SECONDS = 5.0
_RECHECK_BATCH = 1000


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


async def mint(
    conn: AsyncConnection,
    role: Role,
    realms: Sequence[str],
    agent_id: str | None = None,
    name: str | None = None,
) -> tuple[Key, str]:
    """A new key and its secret; the secret is returned here once and never stored."""
    if role is Role.AGENT and not agent_id:
        raise InvalidRequest("an agent key needs agent_id")
    if role is not Role.AGENT and agent_id:
        raise InvalidRequest("only agent keys carry an agent_id")
    if not realms:
        raise InvalidRequest('realms must name at least one realm, or be ["*"]')
    if ALL_REALMS in realms and len(realms) > 1:
        raise InvalidRequest('"*" stands alone: it means every realm')
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = Key(
        id=new_id("key"),
        role=role,
        realms=sorted(set(realms)),
        agent_id=agent_id,
        name=name,
        created_at=utcnow(),
        revoked_at=None,
    )
    await keys.add(conn, key, hash_secret(secret))
    return key, secret


async def ensure_first_key(db: Database, bootstrap_key: str | None) -> str | None:
    """On first start with no key anywhere, mint an admin key and return its secret."""
    if bootstrap_key:
        return None
    async with db.transaction() as conn:
        if await keys.count(conn):
            return None
        _, secret = await mint(conn, Role.ADMIN, [ALL_REALMS], name="first admin")
    return secret


class Keyring:
    def __init__(self, db: Database, bootstrap_key: str | None) -> None:
        self.db = db
        self._bootstrap = bootstrap_key.encode() if bootstrap_key else None
        self._admin = Caller(
            BOOTSTRAP_KEY_ID, Role.ADMIN, frozenset({ALL_REALMS}), name="bootstrap"
        )
        self._by_secret: dict[str, Caller] = {}
        self._unknown: dict[str, float] = {}
        # Raised by every revocation: a lookup that raced one must not cache what it read.
        self._revocations = 0
        self.coherent = True

    def known(self, secret: str) -> Caller | None:
        """The caller for a secret already authenticated and cached, without any I/O."""
        if self._bootstrap is not None and hmac.compare_digest(secret.encode(), self._bootstrap):
            return self._admin
        return self._by_secret.get(secret) if self.coherent else None

    async def authenticate(self, secret: str) -> Caller | None:
        if self._bootstrap is not None and hmac.compare_digest(secret.encode(), self._bootstrap):
            return self._admin
        if self.coherent:
            known = self._by_secret.get(secret)
            if known is not None:
                return known  # the hot path: no hash, no query
        digest = hash_secret(secret)
        if self.coherent:
            refused_until = self._unknown.get(digest)
            if refused_until is not None and refused_until > time.monotonic():
                return None
        revocations = self._revocations
        async with self.db.transaction() as conn:
            key = await keys.by_secret_hash(conn, digest)
        if key is None:
            if len(self._unknown) > 100_000:
                self._unknown.clear()
            self._unknown[digest] = time.monotonic() + _NEGATIVE_SECONDS
            return None
        caller = key.caller()
        if self.coherent and revocations == self._revocations:
            if len(self._by_secret) > 100_000:
                self._by_secret.clear()
            self._by_secret[secret] = caller
        return caller

    def revoke(self, key_id: str) -> None:
        self._revocations += 1
        for secret in [s for s, c in self._by_secret.items() if c.key_id == key_id]:
            del self._by_secret[secret]

    def flush(self) -> None:
        self._revocations += 1
        self._by_secret.clear()
        self._unknown.clear()


async def revoke(conn: AsyncConnection, key_id: str) -> None:
    """Revoke a key now; the caller tells the processes (`Hub.revoke_key`, the bus)."""
    await keys.revoke(conn, key_id, utcnow())


async def recheck_revocations(
    db: Database,
    held: Callable[[], list[str]],
    revoke: Callable[[str], None],
    interval: float = 0.5,
) -> None:
    """The safety net under the bus: every `interval`, ask the database which of the keys
    that hold streams or long polls here are revoked, and `revoke` those.

    A revocation normally arrives at once (from this process, or by the bus from another);
    this catches one the bus lost (a Redis outage, a message published while this process
    was resubscribing), and one made straight in the database. Console sessions that hold
    streams (`ses_` ids) are checked the same way: signed out, expired, or their key revoked.
    """
    while True:
        await asyncio.sleep(interval)
        ids = sorted(set(held()) - {BOOTSTRAP_KEY_ID})
        try:
            for start in range(0, len(ids), _RECHECK_BATCH):
                batch = ids[start : start + _RECHECK_BATCH]
                held_sessions = [i for i in batch if i.startswith(SESSION_PREFIX)]
                async with db.transaction() as conn:
                    revoked = await keys.revoked_among(conn, batch)
                    if held_sessions:
                        revoked += await sessions.ended_among(conn, held_sessions, utcnow())
                for key_id in revoked:
                    revoke(key_id)
        except Exception as exc:
            log.warning("revocation re-check failed (%s); retrying", type(exc).__name__)
