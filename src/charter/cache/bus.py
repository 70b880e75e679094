"""How invalidations travel between server processes: Redis pub/sub, or nowhere (embedded)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from charter.cache import names
from charter.cache.hub import Hub

log = logging.getLogger("charter.cache")


class Invalidation(msgspec.Struct, frozen=True):
    realm: str
    stamp: int
    agents: list[str]


Announcement = tuple[str, bytes]  # a Redis channel and the message to publish on it


class Bus(Protocol):
    async def publish(self, realm: str, agents: Sequence[str], stamp: int) -> None: ...

    def announcement(self, realm: str, agents: Sequence[str], stamp: int) -> Announcement | None:
        """What `publish` would send over Redis (channel, message), for a caller that sends it
        in a pipeline of its own; None: this bus does not go through Redis."""
        ...

    async def revoke_key(self, key_id: str) -> None: ...

    async def run(self) -> None: ...


class LocalBus:
    """The embedded mode: one process, so the hub already heard everything."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def publish(self, realm: str, agents: Sequence[str], stamp: int) -> None:
        self.hub.deliver(realm, agents, stamp)

    def announcement(self, realm: str, agents: Sequence[str], stamp: int) -> Announcement | None:
        return None

    async def revoke_key(self, key_id: str) -> None:
        self.hub.revoke_key(key_id)

    async def run(self) -> None:
        await asyncio.Event().wait()


class RedisBus:
    """One subscription per process, fanned out by the hub to every waiter.

    Each realm's changes go out on its own channel (`{prefix}:{<realm>}:invalidations`), and
    the process subscribes to them all with one pattern of its own deployment's prefix.
    While the subscription is down the process cannot know what others changed, so its local
    tier is switched off (reads go to Redis or the database) and flushed when it comes back.
    """

    def __init__(
        self,
        redis: Redis,
        hub: Hub,
        retry_seconds: float = 0.5,
        on_lost: Callable[[BaseException], None] | None = None,
        prefix: str = names.DEFAULT_PREFIX,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self._pattern = names.invalidation_pattern(prefix)
        self._revocations = names.revocation_channel(prefix)
        self.hub = hub
        self.retry_seconds = retry_seconds
        self.on_lost = on_lost
        self.subscribed = asyncio.Event()
        self._decoder = msgspec.json.Decoder(Invalidation)

    async def publish(self, realm: str, agents: Sequence[str], stamp: int) -> None:
        channel, message = self.announcement(realm, agents, stamp)
        await self.redis.publish(channel, message)

    def announcement(self, realm: str, agents: Sequence[str], stamp: int) -> Announcement:
        message = msgspec.json.encode(Invalidation(realm, stamp, list(agents)))
        return names.invalidation_channel(realm, self.prefix), message

    async def revoke_key(self, key_id: str) -> None:
        self.hub.revoke_key(key_id)
        await self.redis.publish(self._revocations, key_id)

    async def run(self) -> None:
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                log.warning("invalidation subscription lost (%s); retrying", type(exc).__name__)
                if self.on_lost is not None:
                    self.on_lost(exc)
            finally:
                self.subscribed.clear()
                self.hub.set_coherent(False)
                self.hub.flush()
            await asyncio.sleep(self.retry_seconds)

    async def _listen(self) -> None:
        async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.psubscribe(self._pattern)
            await pubsub.subscribe(self._revocations)
            # Anything published before this point may have been missed: start clean.
            self.hub.flush()
            self.hub.set_coherent(True)
            self.subscribed.set()
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None:
                    await pubsub.ping()
                    continue
                if message["type"] == "message" and _named(message, self._revocations):
                    self.hub.revoke_key(bytes(message["data"]).decode())
                    continue
                if message["type"] != "pmessage":
                    continue  # the reply to our ping
                try:
                    change = self._decoder.decode(message["data"])
                except msgspec.DecodeError:
                    log.warning("ignoring an unreadable invalidation message")
                    continue
                self.hub.deliver(change.realm, change.agents, change.stamp)


def _named(message: dict[str, object], channel: str) -> bool:
    return message["channel"] in (channel, channel.encode())
