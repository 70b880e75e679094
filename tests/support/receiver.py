"""A webhook receiver on loopback: a plain asyncio HTTP/1.1 server that verifies each delivery
with the `standardwebhooks` package, keeps what it got, and can be slow, failing or down.

It runs on an event loop of its own, in a thread: the in-process test client blocks the test's
loop while the app handles a request, and a manual retry is a request that calls the receiver.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook

from tests.support.ports import free_port

_REASONS = {200: "OK", 204: "No Content", 500: "Internal Server Error", 503: "Unavailable"}


@dataclass(frozen=True)
class Received:
    message_id: str
    timestamp: int
    body: bytes
    headers: dict[str, str]
    at: float  # time.monotonic() when it arrived

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """`start`, `stop` (down: the port refuses connections) and `start` again on the same port.

    `status` is what it answers; `delay` how long it takes first. Every request is verified
    against `secret` (once set): one that fails verification is kept in `forged`, not `got`.
    """

    port: int = field(default_factory=free_port)
    status: int = 204
    delay: float = 0.0
    secret: str | None = None
    got: list[Received] = field(default_factory=list)
    forged: list[bytes] = field(default_factory=list)
    requests: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/charter?team=a"

    async def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
            self._thread.start()
        await self._on_own_loop(self._listen())

    async def stop(self) -> None:
        """Down: no listener, and open connections cut."""
        if self._loop is not None:
            await self._on_own_loop(self._close())

    async def close(self) -> None:
        """Down for good: the thread ends too."""
        await self.stop()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 5)
            self._loop.close()
            self._loop = None

    async def _on_own_loop(self, work: Any) -> None:
        assert self._loop is not None
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            serving = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in serving:
                task.cancel()
            await asyncio.gather(*serving, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def seqs(self) -> list[int]:
        return [r.event["seq"] for r in self.got]

    async def wait_for(self, count: int, seconds: float = 15.0) -> list[Received]:
        """Until `count` verified deliveries came in (or fail after `seconds`)."""
        deadline = time.monotonic() + seconds
        while len(self.got) < count:
            assert time.monotonic() < deadline, f"{len(self.got)} of {count} in {seconds} s"
            await asyncio.sleep(0.005)
        return list(self.got)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests += 1
                if self.delay:
                    await asyncio.sleep(self.delay)
                self._keep(headers, body)
                status = self.status
                reason = _REASONS.get(status, "Status")
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n".encode("latin-1")
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _keep(self, headers: dict[str, str], body: bytes) -> None:
        if 200 <= self.status < 300:
            try:
                if self.secret is None:
                    raise ValueError("no secret yet")
                Webhook(self.secret).verify(body, headers)
            except Exception:
                self.forged.append(body)
            else:
                received = Received(
                    headers["webhook-id"],
                    int(headers["webhook-timestamp"]),
                    body,
                    headers,
                    time.monotonic(),
                )
                self.got.append(received)
