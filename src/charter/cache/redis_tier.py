"""The shared tier in Redis: stamped entries written only by atomic compare-and-set scripts.

Keys hash-tag the realm (`<prefix>:{<realm>}:prompt:<agent>`, see cache/names.py) so one
realm's keys share a Redis Cluster slot and one script call can invalidate many agents at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from charter.cache import names
from charter.cache.entries import Entry, decode, encode, tombstone
from charter.cache.names import entry_key

__all__ = ["RedisTier", "entry_key"]  # entry_key stays importable from here

log = logging.getLogger("charter.cache")

ENTRY_SECONDS = 24 * 3600
TOMBSTONE_SECONDS = 3600

# Store ARGV[2] unless the key holds an envelope stamped newer than ARGV[1].
_PUT = """
local current = redis.call('GET', KEYS[1])
if current then
  local stamp = string.match(current, '^c1|(%d+)|')
  if stamp and tonumber(stamp) > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

# Lay a tombstone stamped ARGV[1] on every key whose entry is older (or absent).
_INVALIDATE = """
local stamp = tonumber(ARGV[1])
local laid = 0
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  local older = true
  if current then
    local s = string.match(current, '^c1|(%d+)|')
    if s and tonumber(s) >= stamp then older = false end
  end
  if older then
    redis.call('SET', key, ARGV[2], 'EX', ARGV[3])
    laid = laid + 1
  end
end
return laid
"""

# Delete the key if it holds an entry; a tombstone stays (it still guards against refills).
_DROP_ENTRY = """
local current = redis.call('GET', KEYS[1])
if current and not string.match(current, '^c1|%d+|%-|') then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# `_PUT` for many keys of one slot (Redis Cluster runs no script in a pipeline): KEYS the
# entries' keys, ARGV the seconds to keep them, then a stamp and an envelope per key.
_PUT_MANY = """
local stored = 0
for i, key in ipairs(KEYS) do
  local stamp = tonumber(ARGV[2 * i])
  local current = redis.call('GET', key)
  local older = false
  if current then
    local s = string.match(current, '^c1|(%d+)|')
    if s and tonumber(s) > stamp then older = true end
  end
  if not older then
    redis.call('SET', key, ARGV[2 * i + 1], 'EX', ARGV[1])
    stored = stored + 1
  end
end
return stored
"""

_BATCH = 1000

# What a failing Redis raises: anything at all. Besides RedisError and OSError, the clients
# fail otherwise while a server dies or the topology changes under them (seen: an
# AttributeError as a cluster node left, a RuntimeError during a failover, and a 500 on a
# read while a lone Redis was killed under load). A cache tier's failure must trip the breaker
# (reads skip Redis until the relay has redelivered), never fail the read it was to speed up.
_FAILURES: tuple[type[BaseException], ...] = (Exception,)


class RedisTier:
    """Reads fail fast and open a short circuit breaker, so a Redis outage costs reads little."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        breaker_seconds: float = 1.0,
        prefix: str = names.DEFAULT_PREFIX,
        concurrency: int | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        # The cluster client's pools do not wait for a free connection, they raise (which
        # would trip the breaker as if Redis were down): past `concurrency` commands in
        # flight, a caller waits its turn here instead. None: the pool itself waits.
        self._turns: contextlib.AbstractAsyncContextManager[Any] = (
            contextlib.nullcontext() if concurrency is None else asyncio.Semaphore(concurrency)
        )
        self._put = redis.register_script(_PUT)
        self._put_many = redis.register_script(_PUT_MANY)
        self._invalidate = redis.register_script(_INVALIDATE)
        self._drop_entry = redis.register_script(_DROP_ENTRY)
        self._breaker_seconds = breaker_seconds
        self._open_until = 0.0
        # After a failure Redis may hold entries whose invalidation is still pending in the
        # outbox (or that it reloads from disk when it returns): reads skip Redis until a relay
        # pass that began after the last failure has delivered everything pending.
        # A new process starts as if after a failure: it has not watched Redis, which may have
        # come back from an older snapshot while no process was running to notice.
        self.failures = 1
        self._relayed = 0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._open_until

    @property
    def readable(self) -> bool:
        """Reads go to Redis: the breaker is closed and no recovery is pending."""
        return self.available and self._relayed == self.failures

    @property
    def recovering(self) -> bool:
        """Redis failed since the last complete relay pass: it may hold stale entries."""
        return self._relayed != self.failures

    async def drop_all(self) -> int:
        """Delete every prompt entry (tombstones stay): after an outage Redis may have reloaded
        entries whose tombstones it lost (an older snapshot), which no pending event would redo.
        One key per script call, so it holds on Redis Cluster too."""
        dropped = 0
        async for key in self.redis.scan_iter(match=names.entry_pattern(self.prefix), count=1000):
            async with self._turns:
                dropped += int(await self._drop_entry(keys=[key]))
        return dropped

    def relayed(self, failures: int) -> None:
        """A relay pass that began when `failures` had been seen delivered all pending work."""
        self._relayed = failures

    def lost(self, exc: BaseException) -> None:
        """Redis failed under another client of this process (the subscription). Even with no
        read or write of our own failing, it may come back from an older snapshot, holding
        entries whose tombstones it lost and whose events are long delivered: recover as if
        the tier itself had failed (reads skip Redis until a relay pass has dropped them)."""
        self._trip(exc)

    def _trip(self, exc: BaseException) -> None:
        self.failures += 1
        if self.available:
            log.warning("redis unavailable (%s); reading from the database", type(exc).__name__)
        self._open_until = time.monotonic() + self._breaker_seconds

    async def get(self, realm: str, agent: str) -> Entry | None:
        if not self.available or self._relayed != self.failures:
            return None
        try:
            async with self._turns:
                raw = await self.redis.get(entry_key(realm, agent, self.prefix))
        except _FAILURES as exc:
            self._trip(exc)
            return None
        return decode(raw if isinstance(raw, bytes) else None)

    async def get_many(self, realm: str, agents: Sequence[str]) -> dict[str, Entry]:
        """`get` for many agents in one MGET (their keys share the realm's hash slot)."""
        if not agents or not self.available or self._relayed != self.failures:
            return {}
        try:
            async with self._turns:
                raws = await self.redis.mget(
                    [entry_key(realm, agent, self.prefix) for agent in agents]
                )
        except _FAILURES as exc:
            self._trip(exc)
            return {}
        found = {
            agent: decode(raw if isinstance(raw, bytes) else None)
            for agent, raw in zip(agents, raws, strict=True)
        }
        return {agent: entry for agent, entry in found.items() if entry is not None}

    async def put(self, realm: str, agent: str, entry: Entry) -> bool:
        if not self.available:
            return False
        try:
            async with self._turns:
                stored = await self._put(
                    keys=[entry_key(realm, agent, self.prefix)],
                    args=[entry.stamp, encode(entry), ENTRY_SECONDS],
                )
        except _FAILURES as exc:
            self._trip(exc)
            return False
        return bool(stored)

    async def put_many(
        self, realm: str, entries: Mapping[str, Entry], since: int | None = None
    ) -> None:
        """`put` for many agents' entries, in one pipeline (one round trip). With `since`
        (the `failures` count when the reader began), nothing is stored if Redis failed
        meanwhile: the failure may have lost a tombstone these entries predate, and the
        recovery's drop may already have run."""
        if not self.available or not entries:
            return
        if since is not None and since != self.failures:
            return
        if isinstance(self.redis, RedisCluster):
            await self._put_in_one_script(realm, entries)
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for agent, entry in entries.items():
                    args: list[Any] = [entry.stamp, encode(entry), ENTRY_SECONDS]
                    await self._put(
                        keys=[entry_key(realm, agent, self.prefix)], args=args, client=pipe
                    )
                await pipe.execute()
        except _FAILURES as exc:
            self._trip(exc)

    async def _put_in_one_script(self, realm: str, entries: Mapping[str, Entry]) -> None:
        args: list[Any] = [ENTRY_SECONDS]
        for entry in entries.values():
            args += [entry.stamp, encode(entry)]
        keys = [entry_key(realm, agent, self.prefix) for agent in entries]
        try:
            async with self._turns:
                await self._put_many(keys=keys, args=args)
        except _FAILURES as exc:
            self._trip(exc)

    async def invalidate(
        self,
        realm: str,
        agents: Sequence[str],
        stamp: int,
        announce: tuple[str, bytes] | None = None,
    ) -> None:
        """Raises on failure: the relay must know, to keep the change pending.

        `announce` (a channel and a message) is published after the tombstones, in the same
        round trip when the agents fit one script call (a write's usual case).
        """
        args: list[Any] = [stamp, tombstone(stamp), TOMBSTONE_SECONDS]
        if announce is not None and len(agents) <= _BATCH:
            keys = [entry_key(realm, agent, self.prefix) for agent in agents]
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    if keys:
                        # EVAL with the script's text, not the registered script: in a
                        # pipeline that first asks SCRIPT EXISTS, one more round trip on
                        # every write. Redis keeps the compiled script by its hash either way.
                        pipe.eval(_INVALIDATE, len(keys), *keys, *args)
                    pipe.publish(*announce)
                    await pipe.execute()
            except _FAILURES as exc:
                self._trip(exc)
                raise
            return
        await self._tombstones(realm, agents, args)
        if announce is not None:
            try:
                await self.redis.publish(*announce)
            except _FAILURES as exc:
                self._trip(exc)
                raise

    async def _tombstones(self, realm: str, agents: Sequence[str], args: list[Any]) -> None:
        for start in range(0, len(agents), _BATCH):
            keys = [
                entry_key(realm, agent, self.prefix) for agent in agents[start : start + _BATCH]
            ]
            try:
                async with self._turns:
                    await self._invalidate(keys=keys, args=args)
            except _FAILURES as exc:
                self._trip(exc)
                raise
