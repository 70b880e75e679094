"""Server-sent event routes, driven in-process: the status and first events, then hang up.

The test client buffers whole responses, so on an open stream it would wait forever.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
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
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            if message.get("body"):
                chunks.append(message["body"])
            if len(chunks) >= count or not message.get("more_body", False):
                first.set()

    path, _, query = url.partition("?")
    scope = {
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
