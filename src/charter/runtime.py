"""The live resources of one server process, opened and closed by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.cache.bus import Bus, LocalBus, RedisBus
from charter.cache.holds import Holds
from charter.cache.hub import Hub
from charter.cache.local import LocalTier
from charter.cache.redis_tier import RedisTier
from charter.cache.relay import Relay
from charter.cache.shards import ShardedBus, connect
from charter.db.session import Database
from charter.metrics import Metrics
from charter.observability import tracing
from charter.ratelimit import FailureLimit, RateLimiter
from charter.services import claims, schedules
from charter.services.deliveries import Deliverer, Encode
from charter.services.due_work import DueWork
from charter.services.feeds import Feeds
from charter.services.guard import RolloutGuard
from charter.services.idempotency import purge_idempotency_records
from charter.services.keys import Keyring, recheck_revocations
from charter.services.prompts import Prompts
from charter.services.refresh import Refresh
from charter.services.sender import Sender
from charter.services.variables import check_defined
from charter.settings import Settings
from charter.store import timers
from charter.store.events import COMMITTED_KEY, Committed

REDIS_CONNECTIONS = 64

T = TypeVar("T")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    hub: Hub
    bus: Bus
    relay: Relay
    prompts: Prompts
    keyring: Keyring
    limiter: RateLimiter
    metrics: Metrics
    feeds: Feeds
    # Redis, RedisCluster or None (Any: Litestar resolves this class's annotations at run time,
    # and msgspec takes no union of two classes).
    redis: Any = None
    due_work: DueWork | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # An OpenTelemetry Tracer when tracing is on (Any: the extra may not be installed, and
    # Litestar resolves this class's annotations at run time).
    tracer: Any = None
    guard: RolloutGuard | None = None
    deliverer: Deliverer | None = None  # webhooks: started by the app (`deliver_webhooks`)
    # Failed console sign-ins per client address (api/console/signin.py), in this process.
    sign_ins: FailureLimit = field(default_factory=FailureLimit)
    # Deliveries of writes whose caller was cancelled while the write ran on (`write_whole`).
    late: set[asyncio.Task[None]] = field(default_factory=set)

    def deliver_webhooks(self, encode: Encode, *, loop: bool = True) -> Deliverer:
        """This process's webhook deliverer; `encode` renders an event as the feed does. With
        `loop`, it delivers in the background (without, it only sends manual retries)."""
        sender = Sender(self.settings.webhook_allow_private, self.settings.webhook_timeout_seconds)
        retry = self.settings.webhook_retry_hours * 3600
        deliverer = Deliverer(self.db, self.write, sender, encode, retry, self.metrics)
        self.deliverer = deliverer
        if loop:
            self.hub.bells.add(deliverer.bell)
            self.tasks.append(asyncio.create_task(deliverer.run(), name="charter-webhooks"))
        else:
            self.tasks.append(asyncio.create_task(deliverer.idle(), name="charter-webhooks"))
        return deliverer

    def stop_streams(self) -> None:
        """The process is stopping: end every stream and long poll, now and from now on."""
        self.hub.holds.close()

    @asynccontextmanager
    async def write(self, realm_id: str) -> AsyncIterator[AsyncConnection]:
        """A write transaction; once it commits, its events invalidate caches and wake waiters."""
        async with self.db.transaction(realm_id) as conn:
            _start_write(conn)
            yield conn
            # Not in a `finally`: after a failure the connection may be invalidated (the
            # database went away), and touching it again would raise PendingRollbackError
            # in place of the error that says the database is unavailable (a 500, not a 503).
            # A failed block rolls back, so it has nothing to deliver anyway.
            done = await _end_write(conn)
        await self._delivered(done)

    async def write_whole(
        self, realm_id: str, work: Callable[[AsyncConnection], Awaitable[T]]
    ) -> T:
        """`write` for work that awaits nothing but its statements: on SQLite the whole
        transaction, the check before commit included, is one call on the database's thread
        (`Database.whole`); elsewhere the same as `write`.

        There, the call runs on to its end once made, so a caller cancelled meanwhile does
        not stop it: what it commits is delivered all the same.
        """

        async def whole(conn: AsyncConnection) -> tuple[T, _Done]:
            _start_write(conn)
            result = await work(conn)
            return result, await _end_write(conn)

        if not self.db.dialect.whole_calls:
            result, done = await self.db.whole(realm_id, whole)
            await self._delivered(done)
            return result
        call = asyncio.ensure_future(self.db.whole(realm_id, whole))
        try:
            result, done = await asyncio.shield(call)
        except asyncio.CancelledError:
            call.add_done_callback(self._deliver_late)
            raise
        await self._delivered(done)
        return result

    def _deliver_late(self, call: asyncio.Future[tuple[Any, _Done]]) -> None:
        if call.cancelled() or call.exception() is not None:
            return  # rolled back: nothing to deliver
        _, done = call.result()
        task = asyncio.ensure_future(self._delivered(done))
        self.late.add(task)
        task.add_done_callback(self.late.discard)

    async def _delivered(self, done: _Done) -> None:
        committed, wrote_timer = done
        if committed:
            await self.relay.committed(committed)
        if wrote_timer and self.due_work is not None:
            self.due_work.poke()


# What a committed write has to deliver: its changes for caches, and whether it wrote a timer.
_Done = tuple[list[Committed], bool]


def _start_write(conn: AsyncConnection) -> None:
    conn.info.pop(COMMITTED_KEY, None)
    conn.info.pop(timers.WROTE_KEY, None)


async def _end_write(conn: AsyncConnection) -> _Done:
    """Before commit: what the write changed, checked (a write that leaves a hole in an
    affected prompt rolls back)."""
    wrote_timer: bool = conn.info.pop(timers.WROTE_KEY, False)
    committed: list[Committed] = conn.info.pop(COMMITTED_KEY, [])
    await check_defined(conn, committed)
    return committed, wrote_timer


@asynccontextmanager
async def open_runtime(settings: Settings, tracer_provider: Any = None) -> AsyncIterator[Runtime]:
    # Thousands of held watchers are millions of long-lived objects, and with the default
    # thresholds a burst of allocation (one change waking them all) sets off collections that
    # walk them all, on the event loop: measured at a fifth of a 10 000-watcher fan-out
    # (docs/benchmarks.md). Collect the young generation less often, and the old one rarely.
    gc.set_threshold(50_000, 20, 100)
    metrics = Metrics()
    db = Database.connect(
        settings.database_url,
        pool_size=settings.database_pool_size,
        replica_urls=settings.read_replica_urls,
    )
    db.instrument(metrics)
    local = LocalTier()
    keyring = Keyring(db, settings.bootstrap_key)
    hub = Hub(local, keyring, Holds(settings.max_streams_per_key), metrics)
    hub.holds.on_refused = lambda: metrics.rejected("stream_cap")
    redis: Redis | RedisCluster | None = None
    tier: RedisTier | None = None
    bus: Bus
    if settings.redis_url and settings.redis_cluster:
        # Invalidations by sharded pub/sub, one channel per realm (cache/shards.py).
        # Its pools raise when full, where they would wait: the tier queues its commands
        # (REDIS_CONNECTIONS at once), and each master's pool leaves room for the relay's
        # publishes besides.
        redis = connect(settings.redis_url, REDIS_CONNECTIONS + 16)
        tier = RedisTier(redis, prefix=settings.redis_prefix, concurrency=REDIS_CONNECTIONS)
        hub.set_coherent(False)  # until the revocation channel is heard
        bus = ShardedBus(redis, hub, on_lost=tier.lost, prefix=settings.redis_prefix)
    elif settings.redis_url:
        # No client-side retries: a read falls back to the database at once, and the relay
        # and the subscription loop do their own retrying.
        # A blocking pool: past its size a caller waits its turn, where redis-py's default
        # pool (100 connections) raises at once, and a burst of reads (thousands of watchers
        # woken by one change) would trip the breaker as if Redis were down. The wait is
        # longer than the socket timeout: a Redis that does not answer trips the breaker on
        # a socket first, and a busy pool is not an outage.
        pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=REDIS_CONNECTIONS,
            timeout=3.0,
            socket_connect_timeout=0.25,
            socket_timeout=1.0,
            health_check_interval=10,
            retry=Retry(NoBackoff(), 0),
        )
        redis = Redis(connection_pool=pool)
        redis.auto_close_connection_pool = True
        tier = RedisTier(redis, prefix=settings.redis_prefix)
        hub.set_coherent(False)  # until the invalidation subscription is up
        bus = RedisBus(redis, hub, on_lost=tier.lost, prefix=settings.redis_prefix)
    else:
        bus = LocalBus(hub)
    relay = Relay(db, hub, bus, tier, metrics)
    metrics.refreshers.append(lambda: metrics.local_entries.set(len(local)))
    metrics.refreshers.append(lambda: metrics.local_enabled.set(int(local.enabled)))
    runtime = Runtime(
        settings,
        db,
        hub,
        bus,
        relay,
        Prompts(db, local, tier, metrics=metrics),
        keyring,
        RateLimiter(settings.rate_limit),
        metrics,
        Feeds(db, hub),
        redis,
    )
    relay.refresh = Refresh(runtime.prompts, hub)
    owned_provider = None
    if tracer_provider is None and settings.tracing:
        tracer_provider = owned_provider = tracing.provider_from_env(os.environ)
    if tracer_provider is not None:
        runtime.tracer = tracer_provider.get_tracer("charter")
        tracing.trace_statements(db.engine, runtime.tracer)
    runtime.guard = RolloutGuard(db, runtime.write)
    runtime.tasks.append(asyncio.create_task(runtime.guard.run(), name="charter-rollout-guard"))
    runtime.tasks.append(
        asyncio.create_task(
            purge_idempotency_records(db, settings.idempotency_hours), name="charter-purge"
        )
    )
    runtime.tasks.append(
        asyncio.create_task(
            recheck_revocations(db, hub.holds.key_ids, hub.revoke_key), name="charter-revocations"
        )
    )
    # Lease expiries and schedules, in every process (ADR 0008).
    runtime.due_work = DueWork(
        db,
        runtime.write,
        {
            timers.CLAIM: claims.expire,
            timers.SCHEDULE: schedules.runner(settings.max_depth),
        },
    )
    runtime.tasks.append(asyncio.create_task(runtime.due_work.run(), name="charter-due-work"))
    if redis is not None:
        runtime.tasks.append(asyncio.create_task(bus.run(), name="charter-subscription"))
        runtime.tasks.append(asyncio.create_task(relay.run(), name="charter-relay"))
    try:
        yield runtime
    finally:
        runtime.stop_streams()
        relay.stop()
        await runtime.feeds.close()
        for task in runtime.tasks:
            task.cancel()
        for task in runtime.tasks:
            # Cancel again until it ends: a client can swallow a cancellation (redis-py's
            # publish does), and a loop that retries would then outlive the shutdown.
            while not task.done():
                await asyncio.wait([task], timeout=0.1)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if redis is not None:
            await redis.aclose()
        await db.dispose()
        if owned_provider is not None:
            owned_provider.shutdown()
