"""Redis goes away and comes back with its old entries: no write is lost, nothing stale is served.

The Redis here is our own, stopped with `SHUTDOWN SAVE` and restarted on the same directory, so
the entry cached before the outage really is back when Redis returns. Only the relay (the
outbox, re-read past its cursor) knows that writes made during the outage have made it stale.
Two processes share that Redis: C writes, D only reads.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from charter.cache.redis_tier import entry_key
from tests.live.conftest import LiveApi, OwnRedis, StartServer, envelope

pytestmark = pytest.mark.timeout(60)

RELAY_SECONDS = 3.0
# Longer than the read breaker stays open (1 s), so reads right after Redis returns do try it.
BREAKER_SECONDS = 1.2


async def test_a_redis_outage_loses_no_write_and_serves_nothing_stale(
    start_server: StartServer, own_redis: OwnRedis, realm_id: str
) -> None:
    server_c, server_d = await asyncio.gather(
        start_server(own_redis.url), start_server(own_redis.url)
    )
    key = entry_key(realm_id, "x")
    async with server_c.client() as http_c, server_d.client() as http_d:
        c = LiveApi(http_c, realm_id)
        d = c.on(http_d)
        await c.create_realm()
        root = await c.create(title="Root", body="before", owner_agent_id="x")
        stale = await c.prompt("x")
        assert await d.prompt("x") == stale
        assert envelope(await own_redis.get(key)) == (1, stale["composition_id"])

        await own_redis.shutdown_save()
        # Reads fall back to the database: nothing has changed yet, so the same prompt.
        assert await c.prompt("x") == stale
        assert await d.prompt("x") == stale

        # Writes commit (200, never a 5xx), and both processes read the new text at once.
        root = await c.patch(root, body="middle")
        root = await c.patch(root, body="after")
        fresh = await c.prompt("x")
        assert fresh["text"] == "# Root\n\nafter"
        assert fresh["realm_revision"] == await c.revision() == 3
        assert await d.prompt("x") == fresh

        await asyncio.sleep(BREAKER_SECONDS)
        await own_redis.start()
        # The stale entry is back (unless a relay already tombstoned it): serve it, never.
        back = envelope(await own_redis.get(key))
        assert back in {(1, stale["composition_id"]), (3, "-"), (3, fresh["composition_id"])}
        deadline = time.monotonic() + RELAY_SECONDS
        while True:
            for api in (c, d):
                seen = await api.prompt("x")
                assert seen["composition_id"] == fresh["composition_id"], "a stale prompt"
            cached = envelope(await own_redis.get(key))
            # Delivered: the relay's tombstone, or a fresh entry a read has stored over it.
            if cached in {(3, "-"), (3, fresh["composition_id"])}:
                break
            assert cached == (1, stale["composition_id"]), cached
            assert time.monotonic() < deadline, "the pending invalidation was not delivered"
            await asyncio.sleep(0.05)

        # Redis is in use again: the next write's own invalidation reaches it at once.
        await c.patch(root, body="final")
        assert envelope(await own_redis.get(key)) == (4, "-")
        final = await d.prompt("x")
        assert final["text"] == "# Root\n\nfinal"
        assert await c.prompt("x") == final
