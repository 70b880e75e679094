"""Scenarios 8 and 9: what open event streams cost a write, and how fast a server holding
10 000 streams stops.

8. A write's latency with 2 000 `events/stream` streams of its realm open, against the same
   write with one stream open, alternating (the order swaps every round). Each write is a
   CAS text PATCH through HTTP, timed at the client from sending it to its 200; the next
   write waits until every stream has received the previous one's event, so each write
   meets quiet streams and pays only for what it sets off itself. DESIGN §5: ≤ 1.5x.
9. `charter serve` holding 10 000 streams (half `prompt/stream` of one agent, half
   `events/stream` of its realm) gets SIGTERM; the time from the signal until the server's
   main process is gone, and how many streams the server ended, with a `retry:` hint,
   before that. DESIGN §5: every stream ended and the process gone in < 5 s.

Both on PostgreSQL and Redis, one worker; the streams are held by child processes
(`watchers.py`) with one key, so the server runs with CHARTER_MAX_STREAMS_PER_KEY=0.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.load import Http1
from benchmarks.servers import Server
from benchmarks.watchers import Fleet


def _env(cfg: dict[str, Any], admin_key: str) -> dict[str, str | None]:
    return {
        "CHARTER_DATABASE_URL": cfg["app_url"],
        "CHARTER_REDIS_URL": cfg["redis_url"],
        "CHARTER_BOOTSTRAP_KEY": admin_key,
        "CHARTER_RATE_LIMIT": "0",
        "CHARTER_MAX_STREAMS_PER_KEY": "0",
    }


class _Api:
    """The bench's own calls: one keep-alive connection, the admin key."""

    def __init__(self, server: Server, key: str) -> None:
        self.http = Http1("127.0.0.1", server.port)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def _request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        try:
            status, _, answer = await self.http.request(method, path, headers, body)
        except (OSError, asyncio.IncompleteReadError):
            # The server closed the idle keep-alive connection (the streams took a while to
            # open): once more, on a new one. A PATCH that did land the first time is refused
            # the second (its If-Match is stale), so nothing is written twice.
            await self.http.close()
            status, _, answer = await self.http.request(method, path, headers, body)
        return status, answer

    async def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        payload = json.dumps(body).encode() if body is not None else b""
        status, answer = await self._request(method, path, {**self.headers, **headers}, payload)
        if status >= 300:
            raise RuntimeError(f"{method} {path} answered {status}: {answer[:300]!r}")
        return json.loads(answer) if answer else None

    async def watchers(self) -> int:
        """Open streams and long polls: `charter_watchers` summed over its kinds."""
        status, answer = await self._request("GET", "/metrics", self.headers)
        kinds = [
            float(line.rpartition(" ")[2])
            for line in answer.decode().splitlines()
            if line.startswith("charter_watchers{")
        ]
        if not kinds:
            raise RuntimeError(f"/metrics ({status}) has no charter_watchers")
        return int(sum(kinds))

    async def until_watchers(self, count: int, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while (now := await self.watchers()) != count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{now} streams held on the server, not {count}")
            await asyncio.sleep(0.05)

    async def realm(self, agent: str) -> tuple[str, dict[str, Any]]:
        realm = "bench-streams-" + secrets.token_hex(4)
        await self.call("POST", "/v1/realms", {"id": realm})
        node = await self.call(
            "POST",
            f"/v1/realms/{realm}/directives",
            {"level": "realm", "title": "Root", "body": "v0", "owner_agent_id": agent},
        )
        return realm, node

    async def close(self) -> None:
        await self.http.close()


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "p50_ms": statistics.median(ms),
        "p90_ms": ms[int(0.9 * (len(ms) - 1))],
        "max_ms": ms[-1],
        "writes": len(ms),
    }


async def write_latency(cfg: dict[str, Any], work: Path, admin_key: str) -> dict[str, Any]:
    """Scenario 8."""
    many, rounds, writes = cfg["stream_count"], cfg["stream_rounds"], cfg["stream_writes"]
    server = Server("charter", "charter.app:app_from_env", _env(cfg, admin_key), work / "s8.log")
    api: _Api | None = None
    try:
        await asyncio.to_thread(server.wait_ready)
        api = _Api(server, admin_key)
        realm, node = await api.realm("bench-agent")
        path = f"/v1/realms/{realm}/events/stream"
        runs: dict[str, list[dict[str, float]]] = {"one": [], "many": []}
        for r in range(rounds):
            order = [("one", 1), ("many", many)]
            for name, count in order if r % 2 == 0 else order[::-1]:
                fleet = Fleet(
                    f"s8-{name}",
                    server.port,
                    [path] * count,
                    admin_key,
                    min(cfg["watcher_processes"], count),
                    work,
                    mode="events",
                )
                try:
                    await fleet.open()
                    await api.until_watchers(count)
                    await asyncio.sleep(1.0)  # the streams' first heartbeats and reads settle
                    taken: list[float] = []
                    for _ in range(writes):
                        await fleet.mark()
                        started = time.perf_counter()
                        node = await api.call(
                            "PATCH",
                            f"/v1/realms/{realm}/directives/{node['id']}",
                            {"body": secrets.token_hex(8)},
                            **{"If-Match": f'"{node["revision"]}"'},
                        )
                        taken.append(time.perf_counter() - started)
                        told = await fleet.wait_told(count, 30.0)
                        if told < count:
                            raise RuntimeError(f"{told} of {count} streams told of a write")
                    runs[name].append(_summary(taken))
                    print(
                        f"  round {r + 1}, {count} stream(s): write p50 "
                        f"{runs[name][-1]['p50_ms']:.1f} ms, p90 {runs[name][-1]['p90_ms']:.1f} ms",
                        flush=True,
                    )
                finally:
                    await fleet.close()
                await api.until_watchers(0)
        return {"streams": many, "writes_per_run": writes, "runs": runs}
    finally:
        if api is not None:
            await api.close()
        await asyncio.to_thread(server.stop)


async def shutdown(cfg: dict[str, Any], work: Path, admin_key: str) -> dict[str, Any]:
    """Scenario 9."""
    total = cfg["shutdown_streams"]
    prompts, feeds = total // 2, total - total // 2
    server = Server(
        "charter serve",
        "",
        _env(cfg, admin_key),
        work / "s9.log",
        command=["charter", "serve"],
    )
    fleets: list[Fleet] = []
    api: _Api | None = None
    try:
        await asyncio.to_thread(server.wait_ready)
        api = _Api(server, admin_key)
        realm, _ = await api.realm("bench-agent")
        for mode, path, count in (
            ("sse", f"/v1/realms/{realm}/agents/bench-agent/prompt/stream", prompts),
            ("events", f"/v1/realms/{realm}/events/stream", feeds),
        ):
            processes = max(1, cfg["watcher_processes"] // 2)
            fleet = Fleet("s9", server.port, [path] * count, admin_key, processes, work, mode)
            fleets.append(fleet)
            opened = await fleet.open()
            print(f"  {count} {mode} streams open in {opened:.1f} s", flush=True)
        await api.until_watchers(total)
        await api.close()
        api = None
        await asyncio.sleep(2.0)
        signalled = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(server.process.wait, 60)
            gone = time.monotonic() - signalled
        except Exception:
            gone = None  # still there after a minute: stop() kills it below
        closed = retried = 0
        last: float | None = None
        for fleet in fleets:
            c, r, t = await fleet.ended()
            closed, retried = closed + c, retried + r
            if t is not None:
                last = t if last is None else max(last, t)
        killed = "refused to gracefully stop" in server.log.read_text(errors="replace")
        result = {
            "streams": total,
            "exit_seconds": gone,
            "ended_by_server": closed,
            "with_retry_hint": retried,
            "last_end_seconds": None if last is None else last - signalled,
            "worker_killed": killed,
        }
        print(f"  {json.dumps(result)}", flush=True)
        return result
    finally:
        for fleet in fleets:
            await fleet.close()
        if api is not None:
            await api.close()
        await asyncio.to_thread(server.stop)
