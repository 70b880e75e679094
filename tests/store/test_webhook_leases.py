"""A webhook's delivery lease under a real race on PostgreSQL (the app role, under row-level
security): of many processes' claims released together, exactly one wins; a cursor moves
only for the lease's holder; an expired lease can be taken over."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from charter.clock import utcnow
from charter.db.session import Database
from charter.domain.webhooks import new_secret
from charter.store import realms
from charter.store import webhooks as store
from charter.store.webhooks import Claim, Webhook
from tests.support.api import new_realm_id

CLAIMERS = 20


async def _hook(db: Database) -> tuple[str, str]:
    realm_id, now = new_realm_id(), utcnow()
    hook = Webhook(
        realm_id=realm_id,
        id="whk_01jd0000000000000000000000",
        url="https://93.184.215.14/hooks",
        secret=new_secret(),
        events=["*"],
        agents=None,
        created_by="racer",
        created_at=now,
        state=store.ACTIVE,
        delivered_seq=0,
        failures=0,
        failing_since=None,
        next_attempt_at=now,
        disabled_at=None,
    )
    async with db.transaction(realm_id) as conn:
        await realms.create(conn, realm_id, "leases", now)
        await store.create(conn, hook)
    return realm_id, hook.id


async def test_of_racing_claims_exactly_one_wins(pg_db: Database) -> None:
    realm_id, hook_id = await _hook(pg_db)
    barrier = asyncio.Barrier(CLAIMERS)

    async def claim(owner: str) -> Claim | None:
        async with pg_db.transaction(realm_id) as conn:
            await barrier.wait()
            now = utcnow()
            return await store.claim(
                conn, realm_id, hook_id, owner, now, now + timedelta(seconds=60)
            )

    got = await asyncio.wait_for(asyncio.gather(*(claim(f"dlw_{i}") for i in range(CLAIMERS))), 60)
    winners = [c for c in got if c is not None]
    assert len(winners) == 1

    # Only the holder moves the cursor.
    [held] = winners
    owner = f"dlw_{got.index(held)}"
    later = utcnow() + timedelta(seconds=60)
    async with pg_db.transaction(realm_id) as conn:
        assert not await store.advance(conn, held, "dlw_other", 5, later)
        assert await store.advance(conn, held, owner, 5, later)
        assert (await store.get(conn, realm_id, hook_id)).delivered_seq == 5


async def test_an_expired_lease_is_taken_over_and_the_old_holder_stops(pg_db: Database) -> None:
    realm_id, hook_id = await _hook(pg_db)
    now = utcnow()
    async with pg_db.transaction(realm_id) as conn:
        old = await store.claim(conn, realm_id, hook_id, "dlw_old", now, now)  # expires at once
        assert old is not None
    async with pg_db.transaction(realm_id) as conn:
        later = utcnow()
        new = await store.claim(
            conn, realm_id, hook_id, "dlw_new", later, later + timedelta(seconds=60)
        )
        assert new is not None
    async with pg_db.transaction(realm_id) as conn:
        assert not await store.advance(conn, old, "dlw_old", 3, utcnow() + timedelta(seconds=60))
        assert (await store.get(conn, realm_id, hook_id)).delivered_seq == 0


async def test_another_realms_transaction_sees_no_webhook_and_claims_none(pg_db: Database) -> None:
    realm_id, hook_id = await _hook(pg_db)
    other = new_realm_id()
    now = utcnow()
    async with pg_db.transaction(other) as conn:
        # Row-level security: the cursor is readable (it holds no secret), not writable.
        assert await store.claim(conn, realm_id, hook_id, "dlw_x", now, now) is None
        assert await store.page(conn, realm_id, 10, None) == []
