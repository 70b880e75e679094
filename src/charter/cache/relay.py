"""The outbox relay: turns committed events into invalidations, and never loses one.

Fast path: right after a write commits, its process drops its own local entries and tells the
others. Safety net: a loop in every process delivers whatever events lie past each realm's
relay cursor, then advances the cursor, so a crash between commit and delivery (or a Redis
outage) only delays an invalidation. Delivery is idempotent: an invalidation never removes
an entry stamped at or after its own revision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

from charter.cache.bus import Bus
from charter.cache.entries import Entry
from charter.cache.hub import Hub
from charter.cache.redis_tier import RedisTier
from charter.clock import aware, utcnow
from charter.db.session import Database
from charter.metrics import Metrics
from charter.store import relay_cursors
from charter.store.events import Committed

log = logging.getLogger("charter.relay")

# (realm, stamp, the agents' entries before the change, the local tier's epoch then)
Refresher = Callable[[str, int, Mapping[str, Entry], int], Awaitable[set[str]]]

_PAGE = 1000


class Relay:
    def __init__(
        self,
        db: Database,
        hub: Hub,
        bus: Bus,
        tier: RedisTier | None,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.hub = hub
        self.bus = bus
        self.tier = tier
        self.metrics = metrics
        self._oldest: datetime | None = None  # the oldest pending event this pass has seen
        # Makes the affected agents' new entries from their old ones after a change this
        # process committed, and rings their watchers; returns those agents (runtime.py).
        self.refresh: Refresher | None = None
        self._remaking: set[asyncio.Task[None]] = set()

    async def committed(self, changes: Sequence[Committed]) -> None:
        """The fast path, after commit (the write's answer waits for it): this process's
        entries dropped, the Redis tombstones laid and the change published; then the new
        entries made from the old ones in the background (`refresh`), their watchers rung as
        each batch is stored. Failures are left to the loop."""
        for change in changes:
            agents = sorted(change.agents)
            epoch = self.hub.local.epoch
            olds = self.hub.entries(change.realm, agents) if self.refresh is not None else {}
            # While their new entries are made, deliveries (the relay's loop, the process's
            # own published message) do not ring those agents' watchers: woken before their
            # entries are stored, they would all query.
            if olds:
                self.hub.making(change.realm, olds, change.stamp)
            # This process's entries go at once; its waiters wake only after the Redis
            # tombstones: woken first, thousands of them would read the old entries back from
            # Redis, and crowd the event loop that is laying the tombstones.
            self.hub.drop_local(change.realm, agents, change.stamp)
            if self.tier is not None:
                try:
                    await self._send(change.realm, agents, change.stamp)
                except Exception as exc:
                    log.warning("invalidation deferred to the relay (%s)", type(exc).__name__)
            # Everyone else is rung now, the realm's feed readers too; the agents whose
            # entries are being made, once each batch is stored.
            self.hub.deliver(change.realm, agents, change.stamp)
            if not olds:
                continue
            task = asyncio.create_task(self._remake(change, olds, epoch))
            self._remaking.add(task)
            task.add_done_callback(self._remaking.discard)

    async def _remake(self, change: Committed, olds: Mapping[str, Entry], epoch: int) -> None:
        """Make the new entries (services/refresh.py), then ring the agents it did not."""
        told: set[str] = set()
        try:
            if self.refresh is not None:
                told = await self.refresh(change.realm, change.stamp, olds, epoch)
        except Exception as exc:
            log.warning("recomposition skipped (%s)", type(exc).__name__)
        finally:
            self.hub.made(change.realm, olds, change.stamp)
            self.hub.ring(change.realm, [agent for agent in olds if agent not in told])

    async def settled(self) -> None:
        """Wait until the recompositions under way are done."""
        while self._remaking:
            await asyncio.gather(*self._remaking, return_exceptions=True)

    def stop(self) -> None:
        """Cancel the recompositions under way (the process is stopping)."""
        for task in self._remaking:
            task.cancel()

    async def _send(self, realm: str, agents: list[str], stamp: int) -> None:
        # Tombstones first, then the announcement; over Redis both in one round trip.
        announce = self.bus.announcement(realm, agents, stamp) if self.tier is not None else None
        if self.tier is not None and announce is not None:
            await self.tier.invalidate(realm, agents, stamp, announce)
            return
        if self.tier is not None and agents:
            await self.tier.invalidate(realm, agents, stamp)
        await self.bus.publish(realm, agents, stamp)

    async def run(self, interval: float = 0.5) -> None:
        while True:
            try:
                await self.drain()
            except Exception as exc:
                log.warning("relay pass failed (%s); retrying", type(exc).__name__)
            await asyncio.sleep(interval)

    async def drain(self) -> int:
        """Deliver every event past its realm's cursor; returns how many were delivered."""
        delivered = 0
        failures = self.tier.failures if self.tier is not None else 0
        if self.tier is not None and self.tier.recovering:
            # The realm caches are dropped wholesale, then the pending events delivered.
            await self.tier.drop_all()
        async with self.db.transaction() as conn:
            pending = await relay_cursors.pending_realms(conn)
        self._oldest = None
        for realm, cursor, _ in pending:
            delivered += await self._drain_realm(realm, cursor)
        if self.tier is not None:
            self.tier.relayed(failures)
        if self.metrics is not None:
            self.metrics.relay_lag_events.set(sum(rev - cursor for _, cursor, rev in pending))
            age = 0.0 if self._oldest is None else (utcnow() - self._oldest).total_seconds()
            self.metrics.relay_lag_seconds.set(max(0.0, age))
            self.metrics.refresh()
        return delivered

    async def _drain_realm(self, realm: str, cursor: int) -> int:
        delivered = 0
        while True:
            async with self.db.transaction(realm) as conn:
                rows = await relay_cursors.pending(conn, realm, cursor, _PAGE)
            if not rows:
                return delivered
            first = rows[0].created_at and aware(rows[0].created_at)
            if first is not None and (self._oldest is None or first < self._oldest):
                self._oldest = first
            # Each agent is invalidated as of the last event that affects it: an entry it
            # refilled after that event is current and must survive.
            last_seen: dict[str, int] = {}
            for row in rows:
                for agent in row.affected_agents:
                    last_seen[agent] = row.seq
            by_stamp: dict[int, list[str]] = {}
            for agent, seq in last_seen.items():
                by_stamp.setdefault(seq, []).append(agent)
            stamp = rows[-1].seq
            for seq, agents in sorted(by_stamp.items()):
                await self._send(realm, sorted(agents), seq)
            if stamp not in by_stamp:
                await self._send(realm, [], stamp)  # realm watchers still hear of it
            async with self.db.transaction(realm) as conn:
                await relay_cursors.advance(conn, realm, stamp)
            for seq, agents in sorted(by_stamp.items()):
                self.hub.deliver(realm, agents, seq)
            delivered += len(rows)
            cursor = stamp
