"""Console sessions: signing in with a key, finding the session a cookie names, signing out.

The cookie holds a random secret; the database holds only its hash, the key it stands for,
and the CSRF token of its forms. Every request looks the session up again (one query): a
sign-out or a key's revocation in any process ends it at the next request, and after
`LIFETIME` it ends by itself. Streams opened under a session are also held under its id, so
that a sign-out ends them (`Hub.revoke_key` with the session id, through the bus).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from charter.clock import utcnow
from charter.db.session import Database
from charter.domain.access import ALL_REALMS, Caller, Role
from charter.errors import Forbidden, Unauthenticated
from charter.ids import new_id
from charter.services.keys import BOOTSTRAP_KEY_ID, SESSION_PREFIX, Keyring, hash_secret
from charter.store import sessions
from charter.store.sessions import SessionRow

LIFETIME = timedelta(hours=12)
COOKIE = "charter_session"


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    caller: Caller
    csrf_token: str

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf_token.encode())


async def sign_in(db: Database, keyring: Keyring, key_secret: str) -> tuple[str, Session]:
    """A new session for a valid key that is not an agent's; (cookie secret, session)."""
    caller = await keyring.authenticate(key_secret)
    if caller is None:
        raise Unauthenticated("the key is unknown or revoked")
    if caller.role is Role.AGENT:
        raise Forbidden("an agent key may not sign in to the console")
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    row = SessionRow(
        id=new_id(SESSION_PREFIX.rstrip("_")),
        key_id=caller.key_id,
        key_hash=hash_secret(key_secret),
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + LIFETIME,
    )
    async with db.transaction() as conn:
        await sessions.purge(conn, now - LIFETIME)
        await sessions.add(conn, row, hash_secret(secret))
    return secret, Session(row.id, caller, row.csrf_token)


async def find(db: Database, bootstrap_key: str | None, secret: str) -> Session | None:
    """The live session the cookie secret names, or None."""
    if not secret or len(secret) > 128:
        return None
    async with db.transaction() as conn:
        found = await sessions.live(conn, hash_secret(secret), utcnow())
    if found is None:
        return None
    row = found.session
    if found.key is not None:
        caller = found.key.caller()
    elif (
        row.key_id == BOOTSTRAP_KEY_ID
        and bootstrap_key is not None
        and hmac.compare_digest(row.key_hash, hash_secret(bootstrap_key))
    ):
        caller = Caller(BOOTSTRAP_KEY_ID, Role.ADMIN, frozenset({ALL_REALMS}), name="bootstrap")
    else:
        return None  # its key is gone, or the bootstrap key changed
    return Session(row.id, caller, row.csrf_token)


async def sign_out(db: Database, secret: str) -> str | None:
    """End the session; its id (for ending its streams), or None if it was not live."""
    async with db.transaction() as conn:
        return await sessions.end(conn, hash_secret(secret), utcnow())
