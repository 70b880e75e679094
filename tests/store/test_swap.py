"""The one-call text swap (migrations 0006, 0007), called directly on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from charter.clock import utcnow
from charter.db.session import Database
from charter.db.tables import events
from charter.domain.tree import Level
from charter.domain.versions import Content
from charter.services import writes
from charter.services.writes import Actor, NewDirective
from charter.store import realms, swap
from charter.store.events import COMMITTED_KEY, Committed
from tests.support.api import new_realm_id

ACTOR = Actor(key_id="swapper")


async def test_ok_stale_and_missing(pg_db: Database) -> None:
    realm_id = new_realm_id()
    async with pg_db.transaction(realm_id) as conn:
        await realms.create(conn, realm_id, "swap", utcnow())
        root = await writes.create(
            conn, realm_id, ACTOR, NewDirective(Level.REALM, "Root", "one"), 16
        )
        child = NewDirective(Level.TEAM, "Team", "t", parent_id=root.id, owner_agent_id="crew")
        await writes.create(conn, realm_id, ACTOR, child, 16)

    content = Content("Root", "two")
    async with pg_db.transaction(realm_id) as conn:
        conn.info.pop(COMMITTED_KEY, None)
        done = await swap.swap_content(conn, root, 1, content, "swapper", "why")
        committed = conn.info.pop(COMMITTED_KEY)
        seqs = list((await conn.execute(select(events.c.seq).order_by(events.c.seq))).scalars())
    assert done.directive is not None
    assert (done.directive.revision, done.directive.active_version) == (2, 2)
    assert (done.directive.title, done.directive.body) == ("Root", "two")
    assert (done.directive.id, done.directive.level) == (root.id, Level.REALM)
    assert committed == [Committed(realm_id, seqs[-1], frozenset({"crew"}))]

    async with pg_db.transaction(realm_id) as conn:
        conn.info.pop(COMMITTED_KEY, None)  # the connection's info outlives transactions
        stale = await swap.swap_content(conn, root, 1, content, "swapper", None)
        gone = replace(root, id="dir_00000000000000000000000000")
        missing = await swap.swap_content(conn, gone, 1, content, "swapper", None)
        assert COMMITTED_KEY not in conn.info
    assert (stale.directive, stale.revision) == (None, 2)
    assert (missing.directive, missing.revision) == (None, None)
