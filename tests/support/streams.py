"""Server-sent event routes, driven in-process: the status and first events, then hang up.

The test client buffers whole responses, so on an open stream it would wait forever.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    chunks: tuple[bytes, ...] = ()  # the non-empty body chunks, in order

    def json(self) -> Any:
        return json.loads(self.body)


async def open_stream(
    client: AsyncTestClient[Litestar], url: str, headers: dict[str, str], chunks: int = 1
) -> Answer:
    """GET a streaming route: the status and the first `chunks` non-empty chunks (fewer if
    the response ends first), then hang up (bounded).

    Runs on the loop the client runs the app on (its portal), as the client's requests do.
    """
    future = client.blocking_portal.start_task_soon(_stream_once, client.app, url, headers, chunks)
    return await asyncio.wait_for(asyncio.wrap_future(future), 30)


async def _stream_once(app: Litestar, url: str, headers: dict[str, str], count: int) -> Answer:
    start: dict[str, Any] = {}
    chunks: list[bytes] = []
    first = asyncio.Event()
    hang_up = asyncio.Event()
    receive = _client(hang_up)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            if message.get("body"):
                chunks.append(message["body"])
            if len(chunks) >= count or not message.get("more_body", False):
                first.set()

    scope = _scope(url, headers)
    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(first.wait(), 10)
    finally:
        hang_up.set()
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:
            pytest.fail(f"the stream at {url} did not end when the client hung up")
    content_type = ""
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            content_type = value.decode()
    return Answer(start["status"], content_type, b"".join(chunks), tuple(chunks))


# --- a stream held open while the test does other things -------------------------------------


@dataclass
class HeldStream:
    """A streaming request the app answers on its portal's loop; read from the test's loop.

    `chunks` grow as the app sends; `ended_at` is the monotonic time of the app's last body
    message (the server ended the response); `close` hangs up.
    """

    status: int | None = None
    chunks: list[bytes] = field(default_factory=list)
    ended_at: float | None = None
    _hang_up: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _future: Future[None] | None = None

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def until(self, done: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not within {seconds} s; got {self.body[-400:]!r}")
            await asyncio.sleep(0.005)

    async def until_sent(self, marker: bytes, seconds: float = 10.0) -> None:
        await self.until(lambda: marker in self.body, seconds, f"{marker!r}")

    async def until_ended(self, seconds: float) -> float:
        """Waits for the server to end the response; returns when it did (monotonic)."""
        await self.until(lambda: self.ended_at is not None, seconds, "the end of the stream")
        assert self.ended_at is not None
        return self.ended_at

    async def close(self) -> None:
        if self._loop is not None and self._hang_up is not None:
            self._loop.call_soon_threadsafe(self._hang_up.set)
        if self._future is not None:
            await asyncio.wait_for(asyncio.wrap_future(self._future), 20)


@asynccontextmanager
async def held_stream(
    client: AsyncTestClient[Litestar], url: str, headers: dict[str, str], *, started: bool = True
) -> AsyncIterator[HeldStream]:
    """GET `url` and keep it open until the block ends (or the server ends it); with
    `started`, the block begins once the response has (a long poll's starts at its end)."""
    held = HeldStream()
    running = threading.Event()
    held._future = client.blocking_portal.start_task_soon(
        _hold, client.app, url, headers, held, running
    )
    await asyncio.get_running_loop().run_in_executor(None, running.wait, 10)
    try:
        if started:
            await held.until(lambda: held.status is not None, 10, "the response's start")
        yield held
    finally:
        await held.close()


async def _hold(
    app: Litestar, url: str, headers: dict[str, str], held: HeldStream, running: threading.Event
) -> None:
    held._loop = asyncio.get_running_loop()
    held._hang_up = hang_up = asyncio.Event()
    running.set()
    receive = _client(hang_up)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            held.status = message["status"]
        elif message["type"] == "http.response.body":
            if message.get("body"):
                held.chunks.append(message["body"])
            if not message.get("more_body", False):
                held.ended_at = time.monotonic()
                hang_up.set()  # a real server's receive() says so once the response is done

    await app(_scope(url, headers), receive, send)  # type: ignore[arg-type]


def _client(hang_up: asyncio.Event) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A client's ASGI `receive`: an empty request body, then a disconnect once `hang_up`."""
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    return receive


def _scope(url: str, headers: dict[str, str]) -> dict[str, Any]:
    path, _, query = url.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "extensions": {},
        "state": {},
    }
