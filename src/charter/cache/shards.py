"""Invalidations on Redis Cluster: sharded pub/sub, one channel per realm, heard only as needed.

Each realm's channel (`{prefix}:{<realm>}:invalidations`) is hash-tagged like its keys, so it
lives on the realm's slot, and the channels of many realms spread over every master. A
process subscribes (SSUBSCRIBE) only to the realms it has cached entries or waiters for, on
the master that serves each one's slot: at most one connection per master, however many
realms. A realm it needs but does not hear yet is read around its local tier (the gate,
cache/local.py) until the subscription is confirmed.

A subscription can go without a word from the client library: a slot moves to another master
(Redis sends SUNSUBSCRIBE), a master dies and its replica takes over. Either way the realms
concerned are forgotten locally, their waiters woken, and the channels subscribed again where
their slots now live. A failover can also lose the tombstones the dead master had not yet
passed to its replica: the topology is watched, and a master replaced by one of its replicas
counts as a Redis failure (`on_lost`), after which the relay drops every cached prompt before
Redis is read again (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import RedisError, ResponseError

from charter.cache import names
from charter.cache.bus import Announcement, Invalidation
from charter.cache.hub import Hub
from charter.cache.topology import Succession, Topology, read_nodes
from charter.settings import REDIS_CLUSTER_SCHEME as SCHEME

log = logging.getLogger("charter.cache")

# How often the topology is read (failovers, moved slots); how long a realm stays subscribed
# with neither entries nor waiters here.
TOPOLOGY_SECONDS = 1.0
IDLE_SECONDS = 5.0
_BATCH = 500


def seeds(url: str) -> list[tuple[str, int]]:
    """The `host:port` seeds of a `redis+cluster://host:port,host:port,…` URL."""
    if not url.startswith(SCHEME):
        raise ValueError(f"not a Redis Cluster URL (expected {SCHEME}host:port,…)")
    out: list[tuple[str, int]] = []
    for part in url[len(SCHEME) :].rstrip("/").split(","):
        parsed = urlsplit(f"//{part.strip()}")
        if not parsed.hostname or parsed.port is None:
            raise ValueError(f"Redis Cluster seed {part!r}: expected host:port")
        out.append((parsed.hostname, parsed.port))
    return out


def connect(url: str, max_connections: int) -> RedisCluster:
    """A cluster client that fails fast, like the single-server one (runtime.py)."""
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in seeds(url)],
        max_connections=max_connections,
        socket_connect_timeout=0.25,
        socket_timeout=1.0,
        health_check_interval=10,
        retry=Retry(NoBackoff(), 0),
    )


@dataclass
class _Link:
    """One master's subscription connection and the channels placed on it."""

    address: str
    client: Redis
    pubsub: PubSub
    channels: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class ShardedBus:
    """The Redis Cluster bus: implements the gate of the local tier it serves."""

    def __init__(
        self,
        cluster: RedisCluster,
        hub: Hub,
        retry_seconds: float = 0.5,
        on_lost: Callable[[BaseException], None] | None = None,
        prefix: str = names.DEFAULT_PREFIX,
        topology_seconds: float = TOPOLOGY_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.cluster = cluster
        self.topology_seconds = topology_seconds
        self.idle_seconds = idle_seconds
        self.hub = hub
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self.on_lost = on_lost
        self.subscribed = asyncio.Event()  # the revocation channel is heard
        self._revocations = names.revocation_channel(prefix)
        self._realm_of: dict[str, str | None] = {self._revocations: None}
        self._wanted: set[str] = {self._revocations}  # channels
        self._placed: dict[str, str] = {}  # channel -> address of the link it is on
        self._leaving: set[str] = set()  # channels unsubscribed by us, reply pending
        self._heard: set[str] = set()  # realms whose subscription is confirmed
        self._links: dict[str, _Link] = {}
        self._succession = Succession()
        self._idle_since: dict[str, float] = {}  # realms heard but unneeded, since when
        self._changed = asyncio.Event()
        self._decoder = msgspec.json.Decoder(Invalidation)
        hub.local.gate = self

    # The gate (cache/local.py).
    def open(self, realm: str) -> bool:
        if realm in self._heard:
            return True
        channel = names.invalidation_channel(realm, self.prefix)
        if channel not in self._wanted:
            self._realm_of[channel] = realm
            self._wanted.add(channel)
            self._changed.set()
        return False

    @property
    def subscriptions(self) -> int:
        """Channels subscribed (confirmed or not)."""
        return len(self._placed)

    @property
    def connections(self) -> int:
        """Subscription connections: one per master serving a subscribed channel."""
        return len(self._links)

    def announcement(self, realm: str, agents: Sequence[str], stamp: int) -> Announcement | None:
        """None: on a cluster the tombstones (a script on the realm's master) and the SPUBLISH
        are sent apart, not in one pipeline (`publish`)."""
        return None

    async def publish(self, realm: str, agents: Sequence[str], stamp: int) -> None:
        message = msgspec.json.encode(Invalidation(realm, stamp, list(agents)))
        await self.cluster.spublish(names.invalidation_channel(realm, self.prefix), message)

    async def revoke_key(self, key_id: str) -> None:
        self.hub.revoke_key(key_id)
        await self.cluster.spublish(self._revocations, key_id)

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._reconcile()
                except (RedisError, OSError) as exc:
                    log.warning(
                        "cluster subscription pass failed (%s); retrying", type(exc).__name__
                    )
                    await asyncio.sleep(self.retry_seconds)
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.topology_seconds):
                        await self._changed.wait()
                self._changed.clear()
        finally:
            for link in list(self._links.values()):
                await self._close(link)

    async def _reconcile(self) -> None:
        topology = await self._read_topology()
        if self._succession.failed_over(topology):
            log.warning("a Redis Cluster master failed over; dropping the shared cache")
            if self.on_lost is not None:
                self.on_lost(RedisError("failover"))
        # Channels whose slot moved since they were placed: their subscription is gone, or
        # soon will be (Redis unsubscribes them), and nothing published there is heard.
        for channel, address in list(self._placed.items()):
            owner = topology.owners[key_slot(channel.encode())]
            if owner and owner != address:
                await self._leave(channel, address)
        await self._let_go_of_idle()
        by_address: dict[str, list[str]] = {}
        for channel in sorted(self._wanted - self._placed.keys()):
            address = topology.owners[key_slot(channel.encode())]
            if address:  # else no master serves the slot (a failover under way): next pass
                by_address.setdefault(address, []).append(channel)
        for address, channels in by_address.items():
            link = self._links.get(address) or await self._open(address)
            link.channels.update(channels)
            self._placed.update(dict.fromkeys(channels, address))
            await self._subscribe(link, channels)

    async def _subscribe(self, link: _Link, channels: list[str]) -> None:
        """SSUBSCRIBE each channel (one command per channel: they are in different slots),
        many commands to a write, since thousands of realms may be wanted at once."""
        if link.task is None:
            # The first through PubSub, which opens the connection; read only after that.
            await link.pubsub.ssubscribe(channels[0])
            channels = channels[1:]
            link.task = asyncio.create_task(self._listen(link), name=f"charter-{link.address}")
        connection = link.pubsub.connection
        assert connection is not None
        for start in range(0, len(channels), _BATCH):
            commands = [("SSUBSCRIBE", channel) for channel in channels[start : start + _BATCH]]
            await connection.send_packed_command(connection.pack_commands(commands))

    async def _let_go_of_idle(self) -> None:
        """Unsubscribe realms with neither entries nor waiters here for `idle_seconds`."""
        now = time.monotonic()
        needed = self.hub.watched_realms()
        since = {
            realm: self._idle_since.get(realm, now)
            for realm in self._heard
            if realm not in needed and not self.hub.local.holds(realm)
        }
        self._idle_since = since
        for realm in [r for r, t in since.items() if now - t >= self.idle_seconds]:
            del self._idle_since[realm]
            channel = names.invalidation_channel(realm, self.prefix)
            self._wanted.discard(channel)
            self._realm_of.pop(channel, None)
            address = self._placed.get(channel)
            if address is not None:
                await self._leave(channel, address)

    async def _leave(self, channel: str, address: str) -> None:
        """Unsubscribe the channel where it is placed; its realm is unheard from now."""
        link = self._links[address]
        self._unplace(link, channel)
        link.channels.discard(channel)
        self._leaving.add(channel)
        await link.pubsub.sunsubscribe(channel)

    async def _read_topology(self) -> Topology:
        await self.cluster.initialize()  # a no-op once the client knows the cluster
        failure: BaseException | None = None
        for node in self.cluster.get_nodes():
            try:
                raw: Any = await node.execute_command("CLUSTER", "NODES")
            except (RedisError, OSError) as exc:
                failure = exc
                continue
            return read_nodes(raw)
        raise failure or RedisError("no Redis Cluster node answers")

    async def _open(self, address: str) -> _Link:
        host, _, port = address.rpartition(":")
        # No retries: a dropped subscription must surface here, not be quietly remade.
        client = Redis(
            host=host,
            port=int(port),
            socket_connect_timeout=0.25,
            socket_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
        )
        link = _Link(address, client, client.pubsub())
        self._links[address] = link
        return link

    async def _listen(self, link: _Link) -> None:
        while True:
            try:
                message = await link.pubsub.get_message(timeout=5.0)
                if message is None:
                    await link.pubsub.ping()
                    continue
                self._received(link, message)
                if not link.channels and link.address not in self._placed.values():
                    # Nothing left on it: an unsubscribed PubSub answers at once, and the
                    # loop would spin. Let the connection go; a later need opens another.
                    self._links.pop(link.address, None)
                    await _quietly_close(link)
                    return
            except ResponseError as exc:
                # An SSUBSCRIBE refused (MOVED: the slot left this master after the topology
                # was read). The connection stands; its channel is never confirmed, and the
                # next pass, reading the new owner, moves it.
                log.info("shard subscription at %s refused (%s)", link.address, str(exc)[:80])
                self._changed.set()
            except (RedisError, OSError) as exc:
                held = bool(link.channels)
                self._drop(link)
                if held:
                    log.warning(
                        "shard subscription at %s lost (%s)", link.address, type(exc).__name__
                    )
                    if self.on_lost is not None:
                        self.on_lost(exc)
                    await asyncio.sleep(self.retry_seconds)
                    self._changed.set()
                return  # else it carried nothing (its node left the cluster): nothing lost

    def _received(self, link: _Link, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = _text(message["channel"]) if message.get("channel") is not None else ""
        if kind == "smessage":
            if channel == self._revocations:
                self.hub.revoke_key(_text(message["data"]))
                return
            try:
                change = self._decoder.decode(message["data"])
            except msgspec.DecodeError:
                log.warning("ignoring an unreadable invalidation message")
                return
            self.hub.deliver(change.realm, change.agents, change.stamp)
        elif kind == "ssubscribe" and link.address == self._placed.get(channel):
            realm = self._realm_of.get(channel)
            if channel == self._revocations:
                self.hub.flush()  # revocations may have gone unheard: forget every key
                self.hub.set_coherent(True)
                self.subscribed.set()
            elif realm is not None:
                self._heard.add(realm)
                self.hub.realm_heard(realm)
        elif kind == "sunsubscribe":
            if channel in self._leaving:
                self._leaving.discard(channel)
            elif self._placed.get(channel) == link.address:
                # Redis let go of it: its slot moved. Subscribe again where it lives now.
                self._unplace(link, channel)
                link.channels.discard(channel)
                self._changed.set()

    def _unplace(self, link: _Link, channel: str) -> None:
        """The channel is no longer heard through `link`."""
        self._placed.pop(channel, None)
        realm = self._realm_of.get(channel)
        if realm is None:
            self.subscribed.clear()
            self.hub.set_coherent(False)
            self.hub.flush()
        elif realm in self._heard:
            self._heard.discard(realm)
            self.hub.realms_unheard({realm})

    def _drop(self, link: _Link) -> None:
        """The link's connection failed: every channel on it goes unheard."""
        self._links.pop(link.address, None)
        lost = {ch for ch, address in self._placed.items() if address == link.address}
        realms = {r for ch in lost if (r := self._realm_of.get(ch)) is not None}
        for channel in lost:
            self._placed.pop(channel, None)
        if self._revocations in lost:
            self.subscribed.clear()
            self.hub.set_coherent(False)
            self.hub.flush()
        self._heard -= realms
        self.hub.realms_unheard(realms)
        asyncio.get_running_loop().create_task(_quietly_close(link))

    async def _close(self, link: _Link) -> None:
        if link.task is not None:
            # Cancel until it ends: redis-py can swallow a cancellation mid-read.
            while not link.task.done():
                link.task.cancel()
                await asyncio.wait([link.task], timeout=0.1)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await link.task
        await _quietly_close(link)


async def _quietly_close(link: _Link) -> None:
    with contextlib.suppress(RedisError, OSError):
        await link.pubsub.aclose()  # type: ignore[no-untyped-call]
    with contextlib.suppress(RedisError, OSError):
        await link.client.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
