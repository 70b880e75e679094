"""The tiers' stamp rules, on the local dict and on real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from charter.cache.entries import Entry, decode, encode, tombstone
from charter.cache.local import LocalTier
from charter.cache.redis_tier import RedisTier, entry_key
from tests.support.redis import SHARED_REDIS_URL

CID = "cmp_" + "a" * 64


def entry(stamp: int, payload: bytes = b'{"x":1}') -> Entry:
    return Entry(stamp, CID, payload)


def test_envelope_round_trips_and_rejects_garbage() -> None:
    assert decode(encode(entry(7))) == entry(7)
    assert decode(tombstone(7)) is None
    assert decode(None) is None
    for garbage in (b"", b"c2|7|" + CID.encode() + b"|{}", b"c1|x|-|", b"c1|7|cmp_zz|{}", b"\xff"):
        assert decode(garbage) is None


@given(st.lists(st.tuples(st.sampled_from(["put", "inv"]), st.integers(0, 20)), max_size=40))
def test_local_tier_never_holds_an_entry_older_than_an_invalidation(
    steps: list[tuple[str, int]],
) -> None:
    tier = LocalTier()
    newest_invalidation = -1
    for op, stamp in steps:
        if op == "put":
            tier.put(("r", "a"), entry(stamp))
        else:
            tier.invalidate("r", ["a"], stamp)
            newest_invalidation = max(newest_invalidation, stamp)
        held = tier.get(("r", "a"))
        assert held is None or held.stamp >= newest_invalidation


def test_local_tier_keeps_entries_of_unaffected_agents() -> None:
    tier = LocalTier()
    tier.put(("r", "a"), entry(3))
    tier.put(("r", "b"), entry(3))
    tier.invalidate("r", ["a"], 4)
    assert tier.get(("r", "a")) is None
    assert tier.get(("r", "b")) == entry(3)
    assert not tier.put(("r", "a"), entry(3))
    assert tier.put(("r", "a"), entry(4))


def test_a_disabled_local_tier_neither_serves_nor_stores() -> None:
    tier = LocalTier()
    tier.put(("r", "a"), entry(1))
    tier.enabled = False
    assert tier.get(("r", "a")) is None
    assert not tier.put(("r", "b"), entry(1))


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(SHARED_REDIS_URL)
    yield client
    await client.aclose()


def _relayed(tier: RedisTier) -> RedisTier:
    """As after the process's first relay pass: a new tier trusts no entry before one."""
    tier.relayed(tier.failures)
    return tier


async def test_a_new_tier_reads_nothing_from_redis_before_a_relay_pass(redis: Redis) -> None:
    # Redis may have come back from an older snapshot while no process was there to notice.
    realm = "t-" + uuid.uuid4().hex[:12]
    assert await _relayed(RedisTier(redis)).put(realm, "a", entry(1))
    fresh = RedisTier(redis)
    assert fresh.recovering
    assert await fresh.get(realm, "a") is None
    assert await _relayed(fresh).get(realm, "a") == entry(1)
    await redis.delete(entry_key(realm, "a"))


async def test_redis_tier_refuses_writes_older_than_its_tombstone(redis: Redis) -> None:
    tier = _relayed(RedisTier(redis))
    realm = "t-" + uuid.uuid4().hex[:12]
    assert await tier.put(realm, "a", entry(5))
    assert await tier.get(realm, "a") == entry(5)
    await tier.invalidate(realm, ["a"], 7)
    assert await tier.get(realm, "a") is None
    assert await redis.get(entry_key(realm, "a")) == tombstone(7)
    assert not await tier.put(realm, "a", entry(6))
    assert await tier.put(realm, "a", entry(7))
    # A late, duplicate invalidation never removes an entry that already saw the change.
    await tier.invalidate(realm, ["a"], 7)
    assert await tier.get(realm, "a") == entry(7)
    await redis.delete(entry_key(realm, "a"))


async def test_a_write_s_invalidation_lays_its_tombstones_before_its_announcement(
    redis: Redis,
) -> None:
    # The post-commit call (tombstones and announcement in one pipeline, the script sent as
    # EVAL): the same stamp rules as `invalidate` alone, and whoever hears the announcement
    # reads the tombstones already laid.
    tier = _relayed(RedisTier(redis))
    realm = "t-" + uuid.uuid4().hex[:12]
    channel = "charter-test:" + realm
    assert await tier.put(realm, "a", entry(5))
    assert await tier.put(realm, "b", entry(9))
    try:
        async with redis.pubsub() as listener:
            await listener.subscribe(channel)
            subscribed = await listener.get_message(timeout=5)
            assert subscribed is not None
            assert subscribed["type"] == "subscribe"
            await tier.invalidate(realm, ["a", "b", "c"], 7, (channel, b"announced"))
            message = await listener.get_message(ignore_subscribe_messages=True, timeout=5)
            assert message is not None
            assert message["data"] == b"announced"
            assert await redis.get(entry_key(realm, "a")) == tombstone(7)
            assert await redis.get(entry_key(realm, "c")) == tombstone(7)
            assert await tier.get(realm, "b") == entry(9)  # newer than the change: kept
            assert not await tier.put(realm, "a", entry(6))
            # Twice (the relay's redelivery): an entry that saw the change is kept.
            assert await tier.put(realm, "a", entry(7))
            await tier.invalidate(realm, ["a"], 7, (channel, b"again"))
            assert await tier.get(realm, "a") == entry(7)
    finally:
        await redis.delete(*(entry_key(realm, agent) for agent in "abc"))


async def test_redis_tier_treats_unreadable_values_as_misses(redis: Redis) -> None:
    tier = _relayed(RedisTier(redis))
    realm = "t-" + uuid.uuid4().hex[:12]
    await redis.set(entry_key(realm, "a"), b"c9|1|whatever")
    assert await tier.get(realm, "a") is None
    assert await tier.put(realm, "a", entry(1))
    assert await tier.get(realm, "a") == entry(1)
    await redis.delete(entry_key(realm, "a"))


async def test_redis_tier_fails_open_when_redis_is_unreachable() -> None:
    unreachable = Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    tier = _relayed(RedisTier(unreachable))
    assert await tier.get("r", "a") is None
    assert not tier.available  # the breaker is open: the next reads skip Redis at once
    assert not await tier.put("r", "a", entry(1))
    with pytest.raises((RedisError, OSError)):  # the relay must hear of the failure
        await tier.invalidate("r", ["a"], 2)
    await unreachable.aclose()


async def test_redis_tier_skips_reads_after_a_failure_until_a_later_relay_pass(
    redis: Redis,
) -> None:
    # Redis may come back holding entries whose invalidation is still pending in the outbox.
    tier = _relayed(RedisTier(redis, breaker_seconds=0))
    realm = "t-" + uuid.uuid4().hex[:12]
    assert await tier.put(realm, "a", entry(1))
    before = tier.failures
    tier.failures += 1  # what any Redis error counts
    assert await tier.get(realm, "a") is None
    tier.relayed(before)  # a pass that began before the failure proves nothing
    assert await tier.get(realm, "a") is None
    tier.relayed(tier.failures)
    assert await tier.get(realm, "a") == entry(1)
    await redis.delete(entry_key(realm, "a"))


def test_a_flush_refuses_entries_read_before_it() -> None:
    tier = LocalTier()
    started = tier.epoch  # a reader begins while the process is not listening
    tier.flush()  # the subscription is back: anything read before may have missed a change
    assert not tier.put(("r", "a"), entry(1), started)
    assert tier.put(("r", "a"), entry(1), tier.epoch)


async def test_recovery_drops_every_prompt_entry_and_nothing_else(redis: Redis) -> None:
    tier = RedisTier(redis)
    realm = "t-" + uuid.uuid4().hex[:12]
    assert await tier.put(realm, "a", entry(1))
    await redis.set(f"charter:{{{realm}}}:other", b"kept")
    assert await tier.drop_all() >= 1
    assert await redis.get(entry_key(realm, "a")) is None
    assert await redis.get(f"charter:{{{realm}}}:other") == b"kept"
    await redis.delete(f"charter:{{{realm}}}:other")


async def test_recovery_keeps_tombstones(redis: Redis) -> None:
    tier = RedisTier(redis)
    realm = "t-" + uuid.uuid4().hex[:12]
    await tier.invalidate(realm, ["a"], 5)
    await tier.drop_all()
    assert await redis.get(entry_key(realm, "a")) == tombstone(5)
    assert not await tier.put(realm, "a", entry(4))  # still refuses the older refill
    await redis.delete(entry_key(realm, "a"))
