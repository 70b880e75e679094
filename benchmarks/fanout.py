"""Scenarios 4 and 5: 10 000 agents under one realm root, each with a watcher.

One realm (bulk-seeded, `bulk.py`): a root, 100 teams, 10 000 agent-level nodes under them,
each owned by its own agent. A fresh Charter server and a bare server (`bare_watch.py`) each
get 10 000 server-sent-event watchers (`watchers.py`, in child processes); opening Charter's
streams warms its cache, since each stream reads the agent's prompt.

5. Memory: the RSS of each server (all of its processes, from /proc) before and after its
   10 000 streams opened; then the same for 10 000 long polls on a fresh pair of servers.
   Notification: one agent's own node changes while the 10 000 streams are held; how long
   until that agent's watcher is told (Charter: from the commit; the baseline: from
   publishing the agent's name to the bare server).
4. Fan-out: the root changes. From the commit until each agent's Redis entry is gone (polled
   by `evictions.py`) and until each watcher has received its new prompt. The baseline, in
   the same run and alternating: `DEL` of 10 000 keys holding the same bytes, in the batches
   Charter uses (1 000 keys), then one pub/sub message naming the 10 000 agents to the bare
   server, which pushes the same bytes down each named stream.

The commit's moment is found by polling the realm's revision on a separate connection
(every 0.5 ms): the first read that sees the new revision.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from benchmarks import bulk
from benchmarks.evictions import Evictions
from benchmarks.load import Http1
from benchmarks.reads import fetch
from benchmarks.servers import Server
from benchmarks.watchers import Fleet
from charter.cache.entries import Entry, decode, encode
from charter.cache.redis_tier import entry_key

TEAMS = 100


def rss_mb(server: Server) -> float:
    """Resident memory of all of a server's processes, in MB (VmRSS from /proc)."""
    total_kb = 0
    for pid in server.worker_pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan"), "n": 0}
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max_ms": ordered[-1],
        "n": len(ordered),
    }


def _since(times: list[float | None], start: float) -> tuple[list[float], int]:
    """Milliseconds from `start` of each time seen, and how many were never seen."""
    seen = [(t - start) * 1000 for t in times if t is not None]
    return seen, len(times) - len(seen)


class _Commits:
    """Finds the moment a write commits: polls the realm's revision on its own connection."""

    def __init__(self, conn: asyncpg.Connection, realm: str) -> None:
        self.conn = conn
        self.realm = realm

    async def revision(self) -> int:
        value = await self.conn.fetchval("SELECT revision FROM realms WHERE id = $1", self.realm)
        return int(value)

    async def after(self, revision: int, seconds: float = 30.0) -> float:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await self.revision() > revision:
                return time.monotonic()
            await asyncio.sleep(0.0005)
        raise RuntimeError("the write did not commit in time")


class Charter:
    """Charter's side: PATCHes through HTTP, the commit found by `_Commits`."""

    def __init__(self, server: Server, key: str, commits: _Commits) -> None:
        self.server = server
        self.key = key
        self.commits = commits
        self.http = Http1("127.0.0.1", server.port)
        self.revisions: dict[str, int] = {}

    async def change(self, directive_id: str) -> tuple[float, float, float]:
        """A new body for the node; returns (sent, committed, answered) times."""
        before = await self.commits.revision()
        expected = self.revisions.get(directive_id, 1)
        body = json.dumps({"body": f"{bulk.BODY} Changed {secrets.token_hex(4)}."}).encode()
        sent = time.monotonic()
        commit = asyncio.create_task(self.commits.after(before))
        status, headers, answer = await self.http.request(
            "PATCH",
            f"/v1/realms/{self.commits.realm}/directives/{directive_id}",
            {
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
                "If-Match": f'"{expected}"',
            },
            body,
        )
        answered = time.monotonic()
        if status != 200:
            commit.cancel()
            raise RuntimeError(f"PATCH answered {status}: {answer[:300]!r}")
        self.revisions[directive_id] = int(headers["etag"].strip('"'))
        return sent, await commit, answered


async def _fanout_charter(
    charter: Charter, fleet: Fleet, seeded: bulk.Seeded, redis_url: str, seconds: float
) -> dict[str, Any]:
    agents = seeded.shape.agents
    keys = [entry_key(seeded.realm, seeded.owner(j)) for j in range(agents)]
    evictions = Evictions(redis_url, keys, seconds)
    try:
        live = await evictions.ready()
        await fleet.mark()
        await evictions.go()
        sent, committed, answered = await charter.change(seeded.node_id(1))
        told = await fleet.wait_told(agents, seconds)
        gone_at = await evictions.result()
    finally:
        await evictions.close()
    gone, never_gone = _since(gone_at, committed)
    told_ms, never_told = _since(await fleet.times(), committed)
    return {
        "live_entries": live,
        "commit_ms": (committed - sent) * 1000,
        "answer_ms": (answered - sent) * 1000,
        "invalid": percentiles(gone),
        "not_invalid": never_gone,
        "told": percentiles(told_ms),
        "not_told": never_told if told < agents else 0,
    }


async def _fanout_bare(
    redis: Redis,
    fleet: Fleet,
    channel: str,
    value: bytes,
    redis_url: str,
    seconds: float,
    agents: int,
) -> dict[str, Any]:
    # Keys of the same length as Charter's, outside its `charter:{*}:prompt:*` pattern: a
    # Charter process that drops its prompt entries (its first relay pass, or recovery after
    # a Redis error) must not delete the baseline's keys before they are measured.
    tag = "bench-floor-" + secrets.token_hex(3)
    keys = ["bench" + entry_key(tag, f"agent-{j}")[len("charter") :] for j in range(agents)]
    for start in range(0, agents, 1000):
        await redis.mset(dict.fromkeys(keys[start : start + 1000], value))
    message = json.dumps([f"agent-{j}" for j in range(agents)])
    evictions = Evictions(redis_url, keys, seconds)
    try:
        live = await evictions.ready()
        await fleet.mark()
        await evictions.go()
        started = time.monotonic()
        for start in range(0, agents, 1000):  # Charter's batch size (cache/redis_tier.py)
            await redis.delete(*keys[start : start + 1000])
        await redis.publish(channel, message)
        told = await fleet.wait_told(agents, seconds)
        gone_at = await evictions.result()
    finally:
        await evictions.close()
    gone, never_gone = _since(gone_at, started)
    told_ms, never_told = _since(await fleet.times(), started)
    return {
        "live_entries": live,
        "invalid": percentiles(gone),
        "not_invalid": never_gone,
        "told": percentiles(told_ms),
        "not_told": never_told if told < agents else 0,
    }


async def _one_charter(charter: Charter, fleet: Fleet, seeded: bulk.Seeded, j: int) -> float:
    await fleet.mark()
    _, committed, _ = await charter.change(seeded.agent_node(j))
    if await fleet.wait_told(1, 10.0, poll=0.005) < 1:
        raise RuntimeError(f"the watcher of {seeded.owner(j)} was not told in 10 s")
    told = [t for t in await fleet.times() if t is not None]
    return (min(told) - committed) * 1000


async def _one_bare(redis: Redis, fleet: Fleet, channel: str, j: int) -> float:
    await fleet.mark()
    started = time.monotonic()
    await redis.publish(channel, json.dumps([f"agent-{j}"]))
    if await fleet.wait_told(1, 10.0, poll=0.005) < 1:
        raise RuntimeError(f"the bare watcher of agent-{j} was not told in 10 s")
    told = [t for t in await fleet.times() if t is not None]
    return (min(told) - started) * 1000


class _Pair:
    """A fresh Charter server and a fresh bare server (`bare_watch.py`) for one realm."""

    def __init__(self, cfg: dict[str, Any], work: Path, admin_key: str, tag: str) -> None:
        self.cfg, self.work, self.key, self.tag = cfg, work, admin_key, tag
        self.channel = f"bench:fanout:{tag}:{secrets.token_hex(4)}"
        self.servers: list[Server] = []
        self.fleets: list[Fleet] = []

    async def start(self, seeded: bulk.Seeded) -> bytes:
        """Start both; returns the Redis value of one agent's entry (the baseline's bytes)."""
        charter = Server(
            "charter",
            "charter.app:app_from_env",
            {
                "CHARTER_DATABASE_URL": self.cfg["app_url"],
                "CHARTER_REDIS_URL": self.cfg["redis_url"],
                "CHARTER_BOOTSTRAP_KEY": self.key,
                "CHARTER_RATE_LIMIT": "0",
                "CHARTER_MAX_STREAMS_PER_KEY": "0",  # one key holds all 10 000
            },
            self.work / f"charter-{self.tag}.log",
        )
        self.servers.append(charter)
        await asyncio.to_thread(charter.wait_ready)
        path = f"/v1/realms/{seeded.realm}/agents/{seeded.owner(0)}/prompt"
        headers = {"Authorization": f"Bearer {self.key}"}
        status, payload, _ = await asyncio.to_thread(fetch, charter.base + path, headers)
        if status != 200:
            raise RuntimeError(f"the prompt answered {status}: {payload[:300]!r}")
        (self.work / f"payload-{self.tag}").write_bytes(payload)
        bare = Server(
            "bare",
            "benchmarks.bare_watch:create_app",
            {
                "BENCH_BARE_PAYLOAD": str(self.work / f"payload-{self.tag}"),
                "BENCH_BARE_CHANNEL": self.channel,
                "BENCH_BARE_REDIS": self.cfg["redis_url"],
            },
            self.work / f"bare-{self.tag}.log",
        )
        self.servers.append(bare)
        await asyncio.to_thread(bare.wait_ready)
        await asyncio.sleep(1.0)  # both settled: lifespans done, subscriptions up
        redis = Redis.from_url(self.cfg["redis_url"])
        try:
            held = await redis.get(entry_key(seeded.realm, seeded.owner(0)))
        finally:
            await redis.aclose()
        # The baseline's keys must hold a live entry (an envelope with a stamp), or the poller
        # sees them gone before the DEL: Charter's own entry if Redis has it yet, else the
        # same payload in the same envelope.
        return held if decode(held) is not None else encode(Entry(1, "cmp_" + "0" * 64, payload))

    @property
    def charter(self) -> Server:
        return self.servers[0]

    @property
    def bare(self) -> Server:
        return self.servers[1]

    async def hold(self, paths: list[str], mode: str) -> dict[str, Any]:
        """Open the watchers on both servers, bare first; each server's memory around it."""
        memory: dict[str, Any] = {}
        for target in (self.bare, self.charter):
            before = rss_mb(target)
            fleet = Fleet(
                target.name,
                target.port,
                paths,
                self.key,
                self.cfg["watcher_processes"],
                self.work,
                mode,
            )
            self.fleets.append(fleet)
            seconds = await fleet.open()
            await asyncio.sleep(3.0)  # let the allocator and the heartbeats settle
            after = rss_mb(target)
            memory[target.name] = {
                "rss_before_mb": before,
                "rss_after_mb": after,
                "per_watcher_kb": (after - before) * 1024 / len(paths),
                "open_seconds": seconds,
            }
            print(
                f"  {len(paths)} {mode} watchers on {target.name}: opened in {seconds:.1f} s, "
                f"RSS {before:.0f} → {after:.0f} MB",
                flush=True,
            )
        return memory

    async def close(self) -> None:
        for fleet in self.fleets:
            await fleet.close()
        for server in self.servers:
            await asyncio.to_thread(server.stop)


async def _rounds(
    pair: _Pair, seeded: bulk.Seeded, cfg: dict[str, Any], conn: asyncpg.Connection, value: bytes
) -> tuple[dict[str, list[float]], dict[str, list[dict[str, Any]]]]:
    """Single-agent changes, then root updates, Charter and the baseline alternating."""
    agents = seeded.shape.agents
    bare_fleet, charter_fleet = pair.fleets
    charter = Charter(pair.charter, pair.key, _Commits(conn, seeded.realm))
    redis = Redis.from_url(cfg["redis_url"])
    singles: dict[str, list[float]] = {"charter": [], "bare": []}
    fanouts: dict[str, list[dict[str, Any]]] = {"charter": [], "bare": []}
    profile = os.environ.get("BENCH_PROFILE")  # a py-spy profile of the first root update
    try:
        for i in range(cfg["fanout_rounds"]):
            order = ("charter", "bare") if i % 2 == 0 else ("bare", "charter")
            for side in order:
                for k in range(cfg["singles"]):
                    j = (i * cfg["singles"] + k) * 97 % agents
                    if side == "charter":
                        ms = await _one_charter(charter, charter_fleet, seeded, j)
                    else:
                        ms = await _one_bare(redis, bare_fleet, pair.channel, j)
                    singles[side].append(ms)
            for side in order:
                if side == "charter":
                    profiler = None
                    if profile and i == 0:
                        profiler = pair.charter.profile(Path(profile), 20)
                    result = await _fanout_charter(
                        charter, charter_fleet, seeded, cfg["redis_url"], cfg["fanout_seconds"]
                    )
                    if profiler is not None:
                        await asyncio.to_thread(profiler.wait)
                else:
                    result = await _fanout_bare(
                        redis,
                        bare_fleet,
                        pair.channel,
                        value,
                        cfg["redis_url"],
                        cfg["fanout_seconds"],
                        agents,
                    )
                result["load"] = os.getloadavg()[0]  # the 1-min average, as it ends
                fanouts[side].append(result)
                commit = ""
                if side == "charter":
                    commit = f"; commit {result['commit_ms']:.0f} ms after send"
                print(
                    f"  fan-out round {i + 1} {side:<8} invalid p50 "
                    f"{result['invalid']['p50_ms']:7.1f} p99 {result['invalid']['p99_ms']:7.1f} "
                    f"ms; told p50 {result['told']['p50_ms']:7.1f} p99 "
                    f"{result['told']['p99_ms']:7.1f} max {result['told']['max_ms']:7.1f} ms; "
                    f"not told {result['not_told']}{commit}",
                    flush=True,
                )
                await asyncio.sleep(1.0)  # the relay's second delivery, then quiet
    finally:
        await redis.aclose()
    return singles, fanouts


async def run(cfg: dict[str, Any], work: Path, admin_key: str) -> dict[str, Any]:
    agents = cfg["fanout_agents"]
    shape = bulk.Shape(nodes=1 + TEAMS + agents, teams=TEAMS, subteams=0)
    realm = "fan-" + secrets.token_hex(4)
    started = time.monotonic()
    seeded = await bulk.seed(cfg["owner_dsn"], realm, shape)
    print(f"  seeded {realm}: {shape.nodes} nodes in {time.monotonic() - started:.1f} s")
    poll_paths = [f"/v1/realms/{realm}/agents/{seeded.owner(j)}/prompt" for j in range(agents)]
    sse_paths = [f"{path}/stream" for path in poll_paths]
    conn = await asyncpg.connect(cfg["app_dsn"])
    try:
        pair = _Pair(cfg, work, admin_key, "sse")
        try:
            value = await pair.start(seeded)
            memory = {"sse": await pair.hold(sse_paths, "sse")}
            singles, fanouts = await _rounds(pair, seeded, cfg, conn, value)
            for fleet in pair.fleets:
                memory["sse"][fleet.name]["still_open"] = await fleet.still_open()
        finally:
            await pair.close()
        # Long polls on fresh servers: memory the streams held would blur the figures.
        pair = _Pair(cfg, work, admin_key, "poll")
        try:
            await pair.start(seeded)
            memory["poll"] = await pair.hold(poll_paths, "poll")
        finally:
            await pair.close()
    finally:
        await conn.close()
    return {
        "realm": {"id": realm, "nodes": shape.nodes, "agents": agents},
        "memory": memory,
        "single": {side: percentiles(samples) for side, samples in singles.items()},
        "single_samples": singles,
        "fanout": fanouts,
    }
