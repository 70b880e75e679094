"""Console sessions (services/sessions.py) on both backends: a session stands for its key
until sign-out, the key's revocation or its expiry, and an agent key cannot have one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from charter.clock import utcnow
from charter.db.session import Database
from charter.domain.access import Role
from charter.errors import Forbidden, Unauthenticated
from charter.ids import new_id
from charter.services import keys as key_service
from charter.services import sessions
from charter.services.keys import Keyring, hash_secret
from charter.settings import Settings
from charter.store import sessions as session_rows
from charter.store.sessions import SessionRow


async def _key(db: Database, role: Role, agent_id: str | None = None) -> tuple[str, str]:
    async with db.transaction() as conn:
        key, secret = await key_service.mint(conn, role, ["*"], agent_id, name=f"test {role}")
    return key.id, secret


async def test_a_session_lives_until_sign_out(db: Database, settings: Settings) -> None:
    keyring = Keyring(db, settings.bootstrap_key)
    key_id, secret = await _key(db, Role.OPERATOR)
    cookie, session = await sessions.sign_in(db, keyring, secret)
    assert session.caller.key_id == key_id
    assert cookie != secret
    assert secret not in cookie
    found = await sessions.find(db, settings.bootstrap_key, cookie)
    assert found is not None
    assert (found.id, found.caller.role, found.csrf_token) == (
        session.id,
        Role.OPERATOR,
        session.csrf_token,
    )
    assert found.csrf_ok(session.csrf_token)
    assert not found.csrf_ok(None)
    assert not found.csrf_ok(session.csrf_token[:-1] + "x")
    assert await sessions.sign_out(db, cookie) == session.id
    assert await sessions.find(db, settings.bootstrap_key, cookie) is None
    assert await sessions.sign_out(db, cookie) is None  # once only
    async with db.transaction() as conn:
        assert await session_rows.ended_among(conn, [session.id], utcnow()) == [session.id]


async def test_revoking_the_key_ends_its_sessions(db: Database, settings: Settings) -> None:
    keyring = Keyring(db, settings.bootstrap_key)
    key_id, secret = await _key(db, Role.READER)
    cookie, session = await sessions.sign_in(db, keyring, secret)
    async with db.transaction() as conn:
        assert await session_rows.ended_among(conn, [session.id], utcnow()) == []
        await key_service.revoke(conn, key_id)
    assert await sessions.find(db, settings.bootstrap_key, cookie) is None
    async with db.transaction() as conn:
        assert await session_rows.ended_among(conn, [session.id], utcnow()) == [session.id]


async def test_a_session_expires(db: Database, settings: Settings) -> None:
    key_id, secret = await _key(db, Role.OPERATOR)
    cookie = "expired-" + new_id("x")
    past = utcnow() - timedelta(hours=13)
    row = SessionRow(
        new_id("ses"), key_id, hash_secret(secret), "csrf", past, past + sessions.LIFETIME
    )
    async with db.transaction() as conn:
        await session_rows.add(conn, row, hash_secret(cookie))
    assert await sessions.find(db, settings.bootstrap_key, cookie) is None
    async with db.transaction() as conn:
        assert await session_rows.ended_among(conn, [row.id], utcnow()) == [row.id]
    assert timedelta(hours=12) == sessions.LIFETIME


async def test_agent_and_unknown_keys_cannot_sign_in(db: Database, settings: Settings) -> None:
    keyring = Keyring(db, settings.bootstrap_key)
    _, agent_secret = await _key(db, Role.AGENT, agent_id="pilot")
    with pytest.raises(Forbidden):
        await sessions.sign_in(db, keyring, agent_secret)
    with pytest.raises(Unauthenticated):
        await sessions.sign_in(db, keyring, "chk_not-a-key")
    for nonsense in ("", "x" * 500, "no-such-session"):
        assert await sessions.find(db, settings.bootstrap_key, nonsense) is None


async def test_a_bootstrap_session_ends_when_the_bootstrap_key_changes(
    db: Database, settings: Settings
) -> None:
    assert settings.bootstrap_key is not None
    keyring = Keyring(db, settings.bootstrap_key)
    cookie, session = await sessions.sign_in(db, keyring, settings.bootstrap_key)
    assert session.caller.role is Role.ADMIN
    found = await sessions.find(db, settings.bootstrap_key, cookie)
    assert found is not None
    assert found.caller.key_id == "bootstrap"
    assert await sessions.find(db, settings.bootstrap_key + "-rotated", cookie) is None
    assert await sessions.find(db, None, cookie) is None
