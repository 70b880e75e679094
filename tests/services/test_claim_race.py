"""One live claim per directive, however many agents race for it (§10).

The race runs the claim service itself, 32 transactions at once, 50 rounds, on both backends;
a second race drops the realm lock and leaves only the partial unique index between 32
concurrent inserts (PostgreSQL, where transactions really overlap); a third races claims
against the directive's deactivation, which must leave no live claim behind.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from charter.clock import utcnow
from charter.db.session import Database
from charter.db.tables import claims as claims_table
from charter.db.tables import timers
from charter.domain.events import EventType
from charter.domain.tree import Level
from charter.domain.work import Outcome
from charter.errors import AlreadyClaimed, NotDue
from charter.ids import new_id
from charter.services import activation, claims, writes
from charter.services.claims import ClaimRequest, Finish
from charter.services.writes import Actor, Expected, NewDirective
from charter.store import claims as claim_rows
from charter.store import directives, events, realms
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


async def _claim_or_refused(db: Database, realm: str, node: str, agent: str) -> str | None:
    try:
        async with db.transaction(realm) as conn:
            made = await claims.claim(conn, realm, ACTOR, node, ClaimRequest(agent, 60), 16)
    except (AlreadyClaimed, NotDue):
        return None
    return made.id


async def test_no_claim_outlives_a_deactivation_it_races(db: Database, realm: str) -> None:
    """Claims and the deactivation start together: whichever commits first, the directive
    ends deactivated with no live claim, and a claim that won was released, with its event
    and without its timer."""
    node = await _node(db, realm)
    for round_ in range(ROUNDS // 2):
        async with db.transaction(realm) as conn:
            revision = (await directives.get(conn, realm, node)).revision

        async def deactivate(revision: int = revision) -> None:
            async with db.transaction(realm) as conn:
                expected = Expected(revision, via_header=False)
                await activation.deactivate(conn, realm, ACTOR, node, expected)

        racing = [_claim_or_refused(db, realm, node, f"agent-{n}") for n in range(AGENTS // 4)]
        # The deactivation starts at another place among the claims each round, so that it
        # commits first in some rounds and after a claim in others.
        at = round_ % (len(racing) + 1)
        results = await asyncio.gather(*racing[:at], deactivate(), *racing[at:])
        winners = [claim for claim in results if claim is not None]  # deactivate() is None
        assert len(winners) <= 1, (round_, results)
        async with db.transaction(realm) as conn:
            assert (await directives.get(conn, realm, node)).active_version is None
            assert await claim_rows.live_for(conn, realm, node) is None
            feed = await events.feed(conn, realm, 0, 10_000)
            released = {
                e.payload["claim_id"]: e.payload["reason"]
                for e in feed
                if e.type == EventType.CLAIM_EXPIRED
            }
            for claim_id in winners:
                assert (await claim_rows.get(conn, realm, claim_id)).state == "expired"
                assert released[claim_id] == "deactivated"
                left = select(timers.c.id).where(
                    timers.c.realm_id == realm, timers.c.id == claim_id
                )
                assert (await conn.execute(left)).first() is None
            current = await directives.get(conn, realm, node)
            await activation.rollback(
                conn, realm, ACTOR, node, Expected(current.revision, via_header=False), 1, None
            )
