"""The sharded pub/sub bus on a Redis Cluster of the test's own (3 masters, 3 replicas).

Each test builds "processes" in this event loop: a hub with its local tier, and a bus on its
own cluster client. One process's publish must reach another that needs the realm, and only
one that needs it; a moved slot and a dead master must cost the realm's local entries and a
re-subscription, never a missed invalidation served from the local tier.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import pytest
from redis.crc import key_slot
from redis.exceptions import RedisError

from charter.cache import names
from charter.cache.entries import Entry
from charter.cache.hub import Hub
from charter.cache.local import LocalTier
from charter.cache.redis_tier import RedisTier
from charter.cache.relay import Relay
from charter.cache.shards import ShardedBus, connect, seeds
from charter.db.session import Database
from charter.settings import Settings
from charter.store.events import Committed
from tests.support.api import new_realm_id
from tests.support.redis_cluster import OwnRedisCluster, command, missing_tools

pytestmark = [
    pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or ""),
    pytest.mark.timeout(60),
]

WAIT_SECONDS = 15.0


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OwnRedisCluster]:
    own = OwnRedisCluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        await own.start()
        yield own
    finally:
        own.stop()


class Process:
    """One server process's receiving end, as far as the bus is concerned."""

    def __init__(self, bus: ShardedBus, hub: Hub) -> None:
        self.bus = bus
        self.hub = hub
        self.lost: list[BaseException] = []
        bus.on_lost = self.lost.append

    @property
    def local(self) -> LocalTier:
        return self.hub.local

    async def hears(self, *realms: str) -> None:
        """Asks for the realms, and waits (bounded) until their subscriptions are confirmed."""
        # Every realm asked for at once (no short-circuit), then heard.
        await _until(lambda: sum(map(self.bus.open, realms)) == len(realms), "realms heard")


@asynccontextmanager
async def process(
    cluster: OwnRedisCluster, prefix: str, idle_seconds: float = 0.5
) -> AsyncIterator[Process]:
    client = connect(cluster.url, 16)
    hub = Hub(LocalTier())
    bus = ShardedBus(client, hub, prefix=prefix, topology_seconds=0.2, idle_seconds=idle_seconds)
    task = asyncio.create_task(bus.run())
    try:
        await _until(bus.subscribed.is_set, "revocation channel heard")
        yield Process(bus, hub)
    finally:
        while not task.done():  # as runtime.py does: a client may swallow a cancellation
            task.cancel()
            await asyncio.wait([task], timeout=0.1)
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"not {what} within {WAIT_SECONDS} s"
        await asyncio.sleep(0.02)


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await check():
        assert time.monotonic() < deadline, f"not {what} within {WAIT_SECONDS} s"
        await asyncio.sleep(0.05)


def _entry(stamp: int) -> Entry:
    return Entry(stamp, f"cmp_{stamp:064x}", b"{}")


def _prefix() -> str:
    return f"t{time.monotonic_ns()}"


async def _shard_channels(cluster: OwnRedisCluster, prefix: str) -> int:
    """Channels with a subscriber, summed over the masters (each holds its own slots')."""
    total = 0
    for node in cluster.nodes:
        if not node.running:
            continue
        redis = node.client()
        try:
            role = await command(redis, "ROLE")
            if role[0] != b"master":
                continue
            total += len(await command(redis, "PUBSUB", "SHARDCHANNELS", f"{prefix}:*"))
        finally:
            await redis.aclose()
    return total


async def test_a_change_reaches_the_process_that_needs_the_realm_only(
    cluster: OwnRedisCluster,
) -> None:
    prefix = _prefix()
    realm, other = new_realm_id(), new_realm_id()
    async with process(cluster, prefix) as reader, process(cluster, prefix) as writer:
        assert not reader.local.put((realm, "bot"), _entry(5))  # not heard yet: refused
        await reader.hears(realm)
        assert reader.local.put((realm, "bot"), _entry(5))
        assert reader.local.get((realm, "bot")) == _entry(5)
        await writer.bus.publish(other, ["bot"], 6)  # another realm: nothing here moves
        await writer.bus.publish(realm, ["bot"], 6)
        await _until(lambda: reader.local.get((realm, "bot")) is None, "the entry invalidated")
        assert not reader.local.put((realm, "bot"), _entry(5))  # older than the change
        channel = names.invalidation_channel(other, prefix)
        assert channel not in reader.bus._placed
        assert reader.bus.subscriptions == 2  # the realm and the revocations
        assert reader.lost == []


@pytest.mark.parametrize("realms", [1, 100, 10_000])
async def test_subscriptions_and_connections_per_process(
    cluster: OwnRedisCluster, realms: int
) -> None:
    """The figures docs/scaling.md records: one subscription per realm needed, and never
    more connections than masters."""
    prefix = _prefix()
    ids = [f"r{i:05d}" for i in range(realms)]
    async with process(cluster, prefix, idle_seconds=60.0) as one:
        started = time.monotonic()
        await one.hears(*ids)
        took = time.monotonic() - started
        assert one.bus.subscriptions == realms + 1
        assert one.bus.connections == len(await _owners(cluster, prefix, ids))
        assert one.bus.connections <= cluster.masters
        assert await _shard_channels(cluster, prefix) == realms + 1
        print(
            f"cluster bus: {realms} realms -> {one.bus.subscriptions} subscriptions, "
            f"{one.bus.connections} subscription connections "
            f"(+ the command pool), all heard in {took:.2f} s"
        )


async def _owners(cluster: OwnRedisCluster, prefix: str, realms: list[str]) -> set[str]:
    """The masters serving these realms' channels and the revocation channel."""
    channels = [names.invalidation_channel(r, prefix) for r in realms]
    channels.append(names.revocation_channel(prefix))
    slots = {key_slot(channel.encode()) for channel in channels}
    masters = [s for s in await cluster.states() if s.master and not s.failed]
    return {state.address for state in masters if state.slots & slots}


async def test_a_realm_nobody_waits_on_is_let_go(cluster: OwnRedisCluster) -> None:
    prefix = _prefix()
    kept, idle = new_realm_id(), new_realm_id()
    async with process(cluster, prefix) as one:
        await one.hears(kept, idle)
        assert one.local.put((kept, "bot"), _entry(1))
        with one.hub.watch_realm(idle):
            await asyncio.sleep(1.0)  # past idle_seconds: a waiter keeps it
            assert one.bus.open(idle)
        await _until(lambda: one.bus.subscriptions == 2, "the idle realm let go")
        assert one.bus.open(kept)
        assert not one.local.put((idle, "bot"), _entry(1))  # no longer heard: refused


async def test_a_moved_slot_is_followed_and_costs_only_its_realm(
    cluster: OwnRedisCluster,
) -> None:
    prefix = _prefix()
    moved, stays = new_realm_id(), new_realm_id()
    slot = key_slot(names.invalidation_channel(moved, prefix).encode())
    while key_slot(names.invalidation_channel(stays, prefix).encode()) == slot:
        stays = new_realm_id()
    async with process(cluster, prefix) as reader, process(cluster, prefix) as writer:
        await reader.hears(moved, stays)
        assert reader.local.put((moved, "bot"), _entry(1))
        assert reader.local.put((stays, "bot"), _entry(1))
        source = await cluster.master_of(slot)
        masters = [s.address for s in await cluster.states() if s.master and not s.failed]
        target = next(n for n in cluster.nodes if n is not source and n.address in masters)
        with reader.hub.watch_agent(moved, "bot") as watch:
            await cluster.move_slot(slot, target)
            assert await watch.wait(WAIT_SECONDS)  # woken: the realm went unheard
        await _until(lambda: reader.local.get((moved, "bot")) is None, "the entry forgotten")
        assert reader.local.get((stays, "bot")) == _entry(1)
        await reader.hears(moved)
        assert reader.bus._placed[names.invalidation_channel(moved, prefix)] == target.address
        assert reader.local.put((moved, "bot"), _entry(2))
        await writer.bus.publish(moved, ["bot"], 3)
        await _until(lambda: reader.local.get((moved, "bot")) is None, "the entry invalidated")
        assert reader.lost == []  # keys move with their slot: nothing to drop in Redis


async def test_a_dead_master_is_a_lost_shard_then_heard_again_on_its_replica(
    cluster: OwnRedisCluster,
) -> None:
    """Last in the module: it leaves the cluster with one master fewer (its replica)."""
    prefix = _prefix()
    realm = new_realm_id()
    slot = key_slot(names.invalidation_channel(realm, prefix).encode())
    async with process(cluster, prefix) as reader, process(cluster, prefix) as writer:
        await reader.hears(realm)
        assert reader.local.put((realm, "bot"), _entry(1))
        dead = await cluster.master_of(slot)
        await cluster.kill(dead)
        await _until(lambda: reader.local.get((realm, "bot")) is None, "the entry forgotten")
        assert reader.lost, "the dropped subscription was not reported"
        heir = await cluster.failed_over(dead, slot)
        await reader.hears(realm)
        assert reader.bus._placed[names.invalidation_channel(realm, prefix)] == heir.address
        assert any("failover" in str(exc) for exc in reader.lost + writer.lost)
        assert reader.local.put((realm, "bot"), _entry(2))

        async def published() -> bool:
            try:
                await writer.bus.publish(realm, ["bot"], 3)
            except Exception:
                return False  # the writer's client may still be finding the new master
            return True

        await _eventually(published, "published on the new master")
        await _until(lambda: reader.local.get((realm, "bot")) is None, "the entry invalidated")


def test_a_cluster_url_names_its_seeds_or_is_refused() -> None:
    url = "redis+cluster://10.0.0.1:7000, redis.local:7001/"
    assert Settings.from_env({"CHARTER_REDIS_URL": url}).redis_cluster
    assert seeds(url) == [("10.0.0.1", 7000), ("redis.local", 7001)]
    assert not Settings(redis_url="redis://127.0.0.1:6379/0").redis_cluster
    for bad in ("redis+cluster://", "redis+cluster://host", "redis+cluster://a:1,,b:2"):
        with pytest.raises(ValueError, match=r"redis\+cluster://host:port"):
            Settings(redis_url=bad)


async def test_a_burst_past_the_pool_waits_its_turn_and_trips_nothing(
    cluster: OwnRedisCluster,
) -> None:
    """The cluster client's pools raise when full; the tier queues instead, so a burst of
    reads (one change waking thousands of watchers) is not taken for an outage."""
    client = connect(cluster.url, 4)
    tier = RedisTier(client, prefix=_prefix(), concurrency=4)
    tier.relayed(tier.failures)  # as after a first relay pass
    realm = new_realm_id()
    try:
        await tier.put_many(realm, {f"bot{i}": _entry(1) for i in range(20)})
        found = await asyncio.gather(*(tier.get(realm, f"bot{i % 20}") for i in range(300)))
    finally:
        await client.aclose()
    assert tier.readable, "the breaker tripped"
    assert found == [_entry(1)] * 300


async def test_an_entry_read_before_a_failure_is_not_stored_after_it(
    cluster: OwnRedisCluster,
) -> None:
    """A failover may lose a tombstone the entry predates, and the recovery's drop may have
    run already: what a reader composed before the failure is not offered to Redis after."""
    client = connect(cluster.url, 4)
    tier = RedisTier(client, prefix=_prefix(), concurrency=4)
    tier.relayed(tier.failures)
    realm = new_realm_id()
    try:
        began = tier.failures
        tier.lost(RedisError("failover"))  # as the bus reports one
        tier.relayed(tier.failures)  # and a relay pass has recovered since
        await asyncio.sleep(1.1)  # past the breaker the failure opened
        await tier.put_many(realm, {"late": _entry(1)}, since=began)
        await tier.put_many(realm, {"fresh": _entry(1)}, since=tier.failures)
        assert await tier.get(realm, "late") is None
        assert await tier.get(realm, "fresh") == _entry(1)
    finally:
        await client.aclose()


async def test_the_relay_tells_another_process_over_the_cluster(
    cluster: OwnRedisCluster,
) -> None:
    """A write's fast path (the relay, with the cluster's Redis tier) reaches the process
    that holds the realm's entry: sharded pub/sub is not sent in the tier's pipeline."""
    prefix = _prefix()
    realm = new_realm_id()
    async with process(cluster, prefix) as reader, process(cluster, prefix) as writer:
        await reader.hears(realm)
        assert reader.local.put((realm, "bot"), _entry(5))
        tier = RedisTier(writer.bus.cluster, prefix=prefix)
        relay = Relay(cast(Database, None), writer.hub, writer.bus, tier)  # no loop: no db
        await relay.committed([Committed(realm, 6, frozenset({"bot"}))])
        await _until(lambda: reader.local.get((realm, "bot")) is None, "the entry invalidated")
