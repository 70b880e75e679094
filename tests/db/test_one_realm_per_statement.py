"""No statement touches two realms (DESIGN §6, ADR 0014): the precondition of sharding by
realm on Citus. Two realms are driven through a representative slice of the API, interleaved,
on PostgreSQL, with a statement hook (tests/support/realm_statements.py) judging every
statement the server sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text

from charter.app import create_app
from charter.db.session import Database
from charter.settings import Settings
from tests.support.api import ADMIN_KEY, Api, new_realm_id
from tests.support.realm_statements import RealmStatements

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def client(postgres_urls: tuple[str, str]) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(database_url=postgres_urls[1], bootstrap_key=ADMIN_KEY)
    async with AsyncTestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield test_client


async def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def _slice(api: Api, hook: RealmStatements) -> None:
    """Writes of every kind and the reads around them, in one realm."""
    c, base = api.client, api.base
    root = await api.create(title="Root", body="one", owner_agent_id="alpha")
    team = await api.child(root, title="Team", body="two", owner_agent_id="beta")
    other = await api.create(title="Other", body="three")
    for node in (root, team, other):
        hook.owned(api.realm, node["id"])
    team = await api.patch(team, body="two, again", message="why")
    team = await api.patch(team, parent_id=other["id"])  # a move
    await _ok(await c.get(f"{base}/{team['id']}"))
    await _ok(await c.get(base, params={"limit": 10}))
    await _ok(await c.get(f"{base}/{team['id']}/versions"))
    await _ok(await c.get(f"{base}/{team['id']}/versions/1"))
    await _ok(await c.get(f"{base}/{team['id']}/diff", params={"from": 1, "to": 2}))
    await _ok(await c.get(f"{base}/{team['id']}/history"))
    await _ok(await c.get(f"{base}/{team['id']}/ancestry"))
    await _ok(await c.get(f"{base}/{other['id']}/tree"))
    prompt = await _ok(await c.get(f"/v1/realms/{api.realm}/agents/beta/prompt"))
    hook.owned(api.realm, prompt["composition_id"])
    await _ok(await c.get(f"/v1/realms/{api.realm}/compositions/{prompt['composition_id']}"))
    await _ok(await c.get(f"/v1/realms/{api.realm}/events", params={"after": 0}))
    await _ok(await c.get(f"/v1/realms/{api.realm}"))
    await _ok(
        await c.post(
            base,
            json={"level": "realm", "title": "Once", "body": "x"},
            headers={"Idempotency-Key": f"k-{api.realm}"},
        ),
        201,
    )


async def test_every_statement_of_two_interleaved_realms_stays_in_its_realm(
    client: AsyncTestClient[Litestar],
) -> None:
    hook = RealmStatements()
    apis = [Api(client, new_realm_id()) for _ in range(2)]
    for api in apis:
        hook.realm(api.realm)
    engine = client.app.state.runtime.db.engine.sync_engine
    hook.attach(engine)
    try:
        for api in apis:
            await _ok(await client.post("/v1/realms", json={"id": api.realm}), 201)
        for api in apis:  # each realm's slice, the other realm's rows already there
            await _slice(api, hook)
    finally:
        hook.detach(engine)
    assert not hook.violations, "\n".join(hook.violations[:20])
    # It judged statements of both realms, many of them: the rule was really exercised.
    assert all(hook.by_realm.get(api.realm, 0) >= 30 for api in apis), hook.by_realm
    print(f"one realm per statement: {hook.checked} statements judged, 0 crossed realms")


async def test_the_hook_catches_a_statement_naming_another_realm(pg_db: Database) -> None:
    hook = RealmStatements()
    mine, theirs = new_realm_id(), new_realm_id()
    hook.realm(mine)
    hook.realm(theirs)
    hook.attach(pg_db.engine.sync_engine)
    try:
        async with pg_db.transaction(mine) as conn:
            await conn.execute(select(func.length(theirs)))  # names the other realm
            await conn.execute(text("SELECT count(*) FROM directives"))  # no realm_id filter
    finally:
        hook.detach(pg_db.engine.sync_engine)
    assert len(hook.violations) == 2, hook.violations
    assert theirs in hook.violations[0]
    assert "without realm_id" in hook.violations[1]
