"""The stage of a fault run: our own PostgreSQL and Redis, two Charter servers sharing them,
a third that has no Redis and is never read during the run (so whatever it composes at the
end is fresh from the database), and a goal tree to work on.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import httpx
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.faults.history import (
    CROSS_PROCESS_SECONDS,
    Composition,
    FeedRead,
    Outcome,
    PromptRead,
    Read,
    Verdict,
    Write,
    check,
    stale_compositions,
)
from tests.faults.load import Load, Tree, composition, finals, get_json, plant, whole_feed
from tests.support.haproxy import OwnHaproxy
from tests.support.postgres import OwnPostgres
from tests.support.redis import SHARED_REDIS_URL, OwnRedis
from tests.support.redis_cluster import OwnRedisCluster
from tests.support.servers import CharterServer, charter_env, kill_group

SERVERS = ("a", "b")  # under load; "fresh" is only read at the end
WARMUP_SECONDS = 1.5
STOP_SECONDS = 15.0
DRAIN_SECONDS = 10.0
CLIENT_SECONDS = 5.0

_CURSOR = text(
    "SELECT r.revision, coalesce(c.delivered_seq, 0) FROM realms r "
    "LEFT JOIN relay_cursors c ON c.realm_id = r.id WHERE r.id = :realm"
)


class SnapshottingRedis(OwnRedis):
    """Snapshots every second, so a SIGKILL brings it back older than it was: holding entries
    whose later tombstones it never saved. The relay's recovery has to cope with exactly that."""

    SAVE = "1 1"

    async def kill(self) -> None:
        assert self.process is not None
        await kill_group(self.process)

    async def freeze(self) -> None:
        """Snapshot now, and no more until a restart: a SIGKILL brings back exactly this."""
        redis = Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0)
        try:
            await redis.config_set("save", "")
            deadline = time.monotonic() + STOP_SECONDS
            while True:
                try:
                    await redis.save()
                    return
                except ResponseError as exc:  # a scheduled background save is still running
                    if "in progress" not in str(exc) or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        finally:
            await redis.aclose()


@dataclass
class Fleet:
    """`charter serve` processes by name; every one started is stopped by `stop_all`."""

    logs: Path
    key: str
    database_url: str
    servers: dict[str, CharterServer] = field(default_factory=dict)

    async def start(
        self, name: str, redis_url: str | None, prefix: str | None = None
    ) -> CharterServer:
        settings = {"database_url": self.database_url, "bootstrap_key": self.key}
        if redis_url is not None:
            settings["redis_url"] = redis_url
        if prefix is not None:
            settings["redis_prefix"] = prefix
        env = charter_env(rate_limit="0", **settings)
        server = CharterServer(env, self.logs / f"{name}.log")
        self.servers[name] = server
        await server.astart()
        return server

    async def kill(self, name: str) -> None:
        await self.servers[name].kill()

    async def restart(self, name: str) -> None:
        """A new process on the old port, so clients simply find it there again."""
        await self.servers[name].astart()

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()

    def unexpected(self) -> list[str]:
        """The servers' log lines about an unexpected error (a 500 names its exception's type
        there), so a failed run says what went wrong inside."""
        lines: list[str] = []
        for name in self.servers:
            log = self.logs / f"{name}.log"
            if log.exists():
                text = log.read_text(errors="replace")
                lines += [f"{name}: {line}" for line in text.splitlines() if "unexpected" in line]
        return lines


class _Redis(Protocol):
    @property
    def url(self) -> str: ...


R = TypeVar("R", bound=_Redis)


@dataclass
class Stage(Generic[R]):
    """The stage on one kind of Redis: `Rig` on a server of its own, `ClusterRig` on a
    Redis Cluster."""

    cluster: OwnPostgres
    redis: R
    fleet: Fleet
    clients: dict[str, httpx.AsyncClient]
    tree: Tree
    directory: Path
    summaries: list[str]

    @classmethod
    @asynccontextmanager
    async def built(
        cls,
        cluster: OwnPostgres,
        redis: R,
        fleet: Fleet,
        realm: str,
        directory: Path,
        summaries: list[str],
    ) -> AsyncIterator[Stage[R]]:
        # "fresh" reads only at the end, so whatever it serves is computed then: its own prefix
        # on the shared Redis (never the one the faults hit) keeps it deaf to the others' cache,
        # as a server without Redis would be, which `charter serve` refuses beside servers
        # with it (db/serving_lock.py).
        fresh = fleet.start("fresh", SHARED_REDIS_URL, prefix=f"fresh-{secrets.token_hex(4)}")
        await asyncio.gather(*(fleet.start(name, redis.url) for name in SERVERS), fresh)
        clients = {
            name: server.http(timeout=CLIENT_SECONDS) for name, server in fleet.servers.items()
        }
        try:
            tree = await plant(clients["a"], realm)
            yield cls(cluster, redis, fleet, clients, tree, directory, summaries)
        finally:
            await asyncio.gather(*(client.aclose() for client in clients.values()))

    @asynccontextmanager
    async def loaded(self, seed: int) -> AsyncIterator[Load]:
        """Load on both servers from a warm start until the block ends (or fails)."""
        load = Load(self.tree, {name: self.clients[name] for name in SERVERS}, seed)
        stop = asyncio.Event()
        task = asyncio.create_task(load.run(stop))
        try:
            await asyncio.sleep(WARMUP_SECONDS)
            yield load
        finally:
            stop.set()
            await asyncio.wait_for(task, STOP_SECONDS)

    async def resubscribed(self, seconds: float = 10.0) -> None:
        """Both servers answer /readyz with their invalidation subscription up again."""
        deadline = time.monotonic() + seconds
        for name in SERVERS:
            while True:
                try:
                    response = await self.clients[name].get("/readyz")
                    if response.status_code == 200 and response.json()["cache"] == "ok":
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{name} did not resubscribe in {seconds} s"
                await asyncio.sleep(0.05)

    async def drained(self) -> float:
        """Seconds until the relay cursor reaches the realm's latest event (bounded)."""
        started = time.monotonic()
        engine = create_async_engine(self.cluster.owner_url)
        try:
            while True:
                async with engine.connect() as conn:
                    row = (await conn.execute(_CURSOR, {"realm": self.tree.realm})).one()
                revision, delivered = int(row[0]), int(row[1])
                if delivered >= revision:
                    break
                waited = time.monotonic() - started
                assert waited < DRAIN_SECONDS, f"relay at {delivered} of {revision} after {waited}"
                await asyncio.sleep(0.05)
        finally:
            await engine.dispose()
        feed = await get_json(
            self.clients["fresh"], f"{self.tree.base}/events", params={"after": revision - 1}
        )
        assert [event["seq"] for event in feed["items"]] == [revision], feed
        return time.monotonic() - started

    async def verdict(self, load: Load) -> Verdict:
        """The history checked against the final state, then every cache against fresh."""
        final = await finals(self.clients["fresh"], self.tree)
        feed = await whole_feed(self.clients["fresh"], self.tree)
        verdict = check(load.operations, final, self.tree.chains, feed=feed)
        fresh = {
            agent: await composition(self.clients["fresh"], self.tree, agent)
            for agent in sorted(self.tree.chains)
        }
        # Delivered everything (the relay's cursor is at the end): each server hears of the
        # last invalidations within the cross-process allowance, then must agree for good.
        deadline = time.monotonic() + CROSS_PROCESS_SECONDS
        while True:
            served: dict[tuple[str, str], Composition] = {}
            for name in SERVERS:
                for agent in sorted(self.tree.chains):
                    served[name, agent] = await composition(self.clients[name], self.tree, agent)
            if all(c == fresh[agent] for (_, agent), c in served.items()):
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        verdict.anomalies += stale_compositions(served, fresh, final)
        return verdict

    def report(self, fault: str, verdict: Verdict, load: Load, drain: float) -> str:
        """One line for the log (and the terminal summary), the anomalies in a file."""
        counts: Counter[tuple[str, Outcome]] = Counter(
            (type(op).__name__, op.outcome) for op in load.operations
        )

        def tally(kind: type[Write | Read | PromptRead | FeedRead]) -> str:
            parts = [f"{n} {o.value}" for (k, o), n in sorted(counts.items()) if k == kind.__name__]
            return ", ".join(parts) or "none"

        line = (
            f"faults[{fault}]: {verdict.operations} operations checked, "
            f"{len(verdict.anomalies)} anomalies (writes: {tally(Write)}; reads: {tally(Read)}; "
            f"prompt reads: {tally(PromptRead)}; feed reads: {tally(FeedRead)}; "
            f"{verdict.uncertain_won} of "
            f"{verdict.uncertain} unanswered or 503 writes committed; longest cross-process lag "
            f"{verdict.max_lag * 1000:.0f} ms; outbox drained {drain:.2f} s after the load)"
        )
        print(line)
        anomalies = "\n".join(str(a) for a in verdict.anomalies)
        (self.directory / "summary.txt").write_text(f"{line}\n{anomalies}\n")
        self.summaries.append(line)
        return line


Rig = Stage[SnapshottingRedis]
ClusterRig = Stage[OwnRedisCluster]


BALANCED = ("p1", "p2", "p3")  # behind the load balancer


@dataclass
class Balanced:
    """Three servers behind HAProxy; the rig's load clients "a" and "b" both go through it."""

    rig: Rig
    lb: OwnHaproxy

    @classmethod
    @asynccontextmanager
    async def built(
        cls,
        cluster: OwnPostgres,
        redis: SnapshottingRedis,
        fleet: Fleet,
        realm: str,
        directory: Path,
        summaries: list[str],
    ) -> AsyncIterator[Balanced]:
        fresh = fleet.start("fresh", SHARED_REDIS_URL, prefix=f"fresh-{secrets.token_hex(4)}")
        await asyncio.gather(*(fleet.start(name, redis.url) for name in BALANCED), fresh)
        lb = OwnHaproxy(directory, [fleet.servers[name].port for name in BALANCED], fleet.key)
        clients: dict[str, httpx.AsyncClient] = {}
        try:
            await lb.start()
            clients = {
                "a": lb.http(CLIENT_SECONDS),
                "b": lb.http(CLIENT_SECONDS),
                "fresh": fleet.servers["fresh"].http(CLIENT_SECONDS),
            }
            tree = await plant(clients["a"], realm)
            rig = Rig(cluster, redis, fleet, clients, tree, directory, summaries)
            yield cls(rig, lb)
        finally:
            await asyncio.gather(*(client.aclose() for client in clients.values()))
            lb.stop()
