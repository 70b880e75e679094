"""Redis goes away and comes back with its old entries: no write is lost, nothing stale is served.

The Redis here is our own, stopped with `SHUTDOWN SAVE` and restarted on the same directory, so
the entry cached before the outage really is back when Redis returns. Only the relay (the
outbox, re-read past its cursor) knows that writes made during the outage have made it stale.
Two processes share that Redis: C writes, D only reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from charter.cache.redis_tier import entry_key
from tests.support.live import LiveApi, envelope
from tests.support.redis import OwnRedis
from tests.support.servers import StartServer

pytestmark = pytest.mark.timeout(60)

RELAY_SECONDS = 3.0
PROBES = 15
PROBE_PAUSE = 0.15  # PROBES x PROBE_PAUSE outlasts the read breaker (1 s) with room to spare


@asynccontextmanager
async def relays_held(owner_url: str) -> AsyncIterator[None]:
    """Every relay pass blocks on its read of `relay_cursors`, which only the relay touches."""
    engine = create_async_engine(owner_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            await conn.execute(text("LOCK TABLE relay_cursors IN ACCESS EXCLUSIVE MODE"))
            yield
    finally:
        await engine.dispose()


async def until_it_reaches_redis(probe: LiveApi, agents: list[str], redis: OwnRedis) -> None:
    """Reads agents never read before until one's entry lands in Redis.

    Then the server's read breaker is closed and its Redis connections are live again (a
    connection from before the outage fails once and opens the breaker for a second).
    """
    for agent in agents:
        await probe.prompt(agent)
        cached = envelope(await redis.get(entry_key(probe.realm, agent)))
        if cached is not None and cached[1] != "-":
            return
        await asyncio.sleep(PROBE_PAUSE)
    pytest.fail(f"{probe.http.base_url} did not reach Redis again")


async def test_a_redis_outage_loses_no_write_and_serves_nothing_stale(
    start_server: StartServer,
    own_redis: OwnRedis,
    postgres_urls: tuple[str, str],
    realm_id: str,
) -> None:
    server_c, server_d = await asyncio.gather(
        start_server(own_redis.url), start_server(own_redis.url)
    )
    key = entry_key(realm_id, "x")
    async with server_c.http() as http_c, server_d.http() as http_d:
        c = LiveApi(http_c, realm_id)
        d = c.on(http_d)
        await c.create_realm()
        root = await c.create(title="Root", body="before", owner_agent_id="x")
        stale = await c.prompt("x")
        assert await d.prompt("x") == stale
        assert envelope(await own_redis.get(key)) == (1, stale["composition_id"])
        # A realm of agents that nobody reads until Redis is back (see until_it_reaches_redis).
        probe_c = LiveApi(http_c, realm_id + "-p")
        await probe_c.create_realm()
        for n in range(PROBES):
            await probe_c.create(title=f"C{n}", owner_agent_id=f"c{n}")
            await probe_c.create(title=f"D{n}", owner_agent_id=f"d{n}")

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

        async with relays_held(postgres_urls[0]):
            await own_redis.start()
            # The stale entry is back, and no relay can tombstone it yet.
            assert envelope(await own_redis.get(key)) == (1, stale["composition_id"])
            await asyncio.gather(
                until_it_reaches_redis(probe_c, [f"c{n}" for n in range(PROBES)], own_redis),
                until_it_reaches_redis(
                    probe_c.on(http_d), [f"d{n}" for n in range(PROBES)], own_redis
                ),
            )
            # Both processes read Redis again, and it holds the stale prompt: neither serves it.
            assert await d.prompt("x") == fresh
            assert await c.prompt("x") == fresh
            # (A read may have stored the fresh prompt over it: stamped later, that is allowed;
            # or the recovering relay may have dropped every prompt entry.)
            assert envelope(await own_redis.get(key)) in {
                (1, stale["composition_id"]),
                (3, fresh["composition_id"]),
                None,
            }

        # Let go of the relays: the pending invalidation is delivered within a pass or two.
        deadline = time.monotonic() + RELAY_SECONDS
        while True:
            raw, *seen = await asyncio.gather(own_redis.get(key), c.prompt("x"), d.prompt("x"))
            assert seen == [fresh, fresh]
            cached = envelope(raw)
            # Delivered: the relay's tombstone, or a fresh entry a read has stored over it.
            if cached in {(3, "-"), (3, fresh["composition_id"])}:
                break
            assert cached in {(1, stale["composition_id"]), None}, cached
            assert time.monotonic() < deadline, "the pending invalidation was not delivered"
            await asyncio.sleep(0.02)

        # Redis is in use again: the next write's invalidation reaches it, and both serve it.
        await c.patch(root, body="final")
        deadline = time.monotonic() + RELAY_SECONDS
        while envelope(await own_redis.get(key)) != (4, "-"):
            assert time.monotonic() < deadline, "the new write's tombstone never reached Redis"
            await asyncio.sleep(0.02)
        final = await d.prompt("x")
        assert final["text"] == "# Root\n\nfinal"
        assert await c.prompt("x") == final
