"""One live claim per directive, however many agents race for it (§10).

The race runs the claim service itself, 32 transactions at once, 50 rounds, on both backends;
a second race drops the realm lock and leaves only the partial unique index between 32
concurrent inserts (PostgreSQL, where transactions really overlap).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from charter.clock import utcnow
from charter.db.session import Database
from charter.db.tables import claims as claims_table
from charter.domain.tree import Level
from charter.domain.work import Outcome
from charter.errors import AlreadyClaimed
from charter.ids import new_id
from charter.services import claims, writes
from charter.services.claims import ClaimRequest, Finish
from charter.services.writes import Actor, NewDirective
from charter.store import claims as claim_rows
from charter.store import realms
from tests.support.api import new_realm_id

AGENTS = 32
ROUNDS = 50
ACTOR = Actor("key_test")


async def _node(db: Database, realm: str) -> str:
    async with db.transaction(realm) as conn:
        made = await writes.create(conn, realm, ACTOR, NewDirective(Level.REALM, "T", "B"), 16)
    return made.id


async def _try(db: Database, realm: str, node: str, agent: str) -> str | None:
    try:
        async with db.transaction(realm) as conn:
            made = await claims.claim(conn, realm, ACTOR, node, ClaimRequest(agent, 60), 16)
    except AlreadyClaimed:
        return None
    return made.id


async def test_32_agents_racing_for_one_directive_leave_one_winner_each_round(
    db: Database, realm: str
) -> None:
    node = await _node(db, realm)
    for round_ in range(ROUNDS):
        won = await asyncio.gather(*(_try(db, realm, node, f"agent-{n}") for n in range(AGENTS)))
        winners = [claim for claim in won if claim is not None]
        assert len(winners) == 1, (round_, won)
        async with db.transaction(realm) as conn:
            ended = await claims.finish(
                conn, realm, ACTOR, node, winners[0], Finish(Outcome.FAILED), 16
            )
        assert ended.claim.attempt == round_ + 1
    async with db.transaction(realm) as conn:
        count = select(func.count()).where(claims_table.c.realm_id == realm)
        assert (await conn.execute(count)).scalar_one() == ROUNDS


async def test_the_partial_unique_index_alone_admits_one_live_claim(pg_db: Database) -> None:
    realm = new_realm_id()
    async with pg_db.transaction(realm) as conn:
        await realms.create(conn, realm, realm, utcnow())
    node = await _node(pg_db, realm)
    start = asyncio.Event()

    async def insert(n: int) -> bool:
        async with pg_db.transaction(realm) as conn:
            await start.wait()
            now = utcnow()
            return await claim_rows.insert_live(
                conn,
                realm,
                {
                    "id": new_id("clm"),
                    "directive_id": node,
                    "agent_id": f"agent-{n}",
                    "attempt": 1,
                    "lease_seconds": 60,
                    "created_at": now,
                    "expires_at": now + timedelta(seconds=60),
                },
            )

    tasks = [asyncio.create_task(insert(n)) for n in range(AGENTS)]
    await asyncio.sleep(0.2)
    start.set()
    results = await asyncio.gather(*tasks)
    assert results.count(True) == 1
