"""Scenario 10: webhook delivery latency after commit, against the event stream's.

`charter serve` (PostgreSQL, Redis, one worker) with one webhook of a realm, pointed at a
receiver in this process on loopback, and one `events/stream` of the same realm read here
too. Each write is a CAS text PATCH through HTTP; its latency is timed from the write's 200
(the commit is behind it) to the arrival of its event: as a signed webhook delivery, and as a
server-sent event, the push path that was already there. One write at a time, the next once
both have arrived, so each write meets an idle deliverer. DESIGN §5: p99 < 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.load import Http1
from benchmarks.servers import Server


class _Receiver:
    """Just enough HTTP/1.1 to take webhook POSTs; notes when each event's seq arrives."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.wake = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
                length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
                body = await reader.readexactly(length)
                self.arrived.setdefault(json.loads(body)["seq"], time.perf_counter())
                self.wake.set()
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError, asyncio.CancelledError):
            pass  # the server hung up, or the run is over
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def _stream(port: int, path: str, key: str, arrived: dict[int, float], wake: Any) -> None:
    """Read `events/stream`, noting when each event's id (its seq) arrives."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
    )
    await writer.drain()
    try:
        async for line in reader:
            if line.startswith(b"id:"):
                arrived.setdefault(int(line[3:].strip()), time.perf_counter())
                wake.set()
    finally:
        writer.close()


def _summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "max_ms": ordered[-1],
        "count": len(ordered),
    }


async def run(cfg: dict[str, Any], work: Path, admin_key: str) -> dict[str, Any]:
    writes = int(cfg.get("webhook_writes", 200))
    env: dict[str, str | None] = {
        "CHARTER_DATABASE_URL": cfg["app_url"],
        "CHARTER_REDIS_URL": cfg["redis_url"],
        "CHARTER_BOOTSTRAP_KEY": admin_key,
        "CHARTER_RATE_LIMIT": "0",
        "CHARTER_WEBHOOK_ALLOW_PRIVATE": "1",
    }
    server = Server("charter", "charter.app:app_from_env", env, work / "s10.log")
    receiver = _Receiver()
    http: Http1 | None = None
    stream: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(server.wait_ready)
        port = await receiver.start()
        http = Http1("127.0.0.1", server.port)
        headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}

        async def call(method: str, path: str, body: Any, **more: str) -> Any:
            assert http is not None
            status, _, answer = await http.request(
                method, path, {**headers, **more}, json.dumps(body).encode()
            )
            if status >= 300:
                raise RuntimeError(f"{method} {path} answered {status}: {answer[:300]!r}")
            return json.loads(answer)

        realm = "bench-webhooks-" + secrets.token_hex(4)
        await call("POST", "/v1/realms", {"id": realm})
        base = f"/v1/realms/{realm}"
        url = f"http://127.0.0.1:{port}/hook"
        await call("POST", f"{base}/webhooks", {"url": url, "events": ["*"]})
        node = await call(
            "POST", f"{base}/directives", {"level": "realm", "title": "Root", "body": "v0"}
        )
        streamed: dict[int, float] = {}
        stream = asyncio.create_task(
            _stream(server.port, f"{base}/events/stream", admin_key, streamed, receiver.wake)
        )
        await asyncio.sleep(0.5)  # the stream is open, the first delivery done
        hooked_ms: list[float] = []
        streamed_ms: list[float] = []
        write_ms: list[float] = []
        for i in range(writes):
            sent = time.perf_counter()
            node = await call(
                "PATCH",
                f"{base}/directives/{node['id']}",
                {"body": f"v{i + 1}"},
                **{"If-Match": f'"{node["revision"]}"'},
            )
            done = time.perf_counter()
            seq = node["revision"]  # one realm, one directive: its revision is the event seq
            deadline = done + 10
            while seq not in receiver.arrived or seq not in streamed:
                receiver.wake.clear()
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"event {seq} not delivered in 10 s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(receiver.wake.wait(), 1)
            write_ms.append((done - sent) * 1000)
            hooked_ms.append(max(0.0, receiver.arrived[seq] - done) * 1000)
            streamed_ms.append(max(0.0, streamed[seq] - done) * 1000)
        return {
            "writes": writes,
            "webhook": _summary(hooked_ms),
            "stream": _summary(streamed_ms),
            "write": _summary(write_ms),
        }
    finally:
        if stream is not None:
            stream.cancel()
        if http is not None:
            await http.close()
        await receiver.stop()
        server.stop()
