"""The baseline for watchers: a bare Litestar app holding server-sent-event streams.

Same path shapes and same granian options as Charter. A long poll (`?wait=N` with the ETag)
answers when its agent is named, or 304 after N seconds. Each stream sends the payload (the
bytes of a Charter prompt) on connect, a `: ping` comment every 15 s (Charter's heartbeat), and the
payload again whenever a Redis pub/sub message on `BENCH_BARE_CHANNEL` names its agent: one
subscription per process fanned out to per-stream events, as Charter's hub does, and nothing
else (no database, no cache, no composition, no authentication).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.response import ServerSentEvent, ServerSentEventMessage
from redis.asyncio import Redis

HEARTBEAT_SECONDS = 15.0
ETAG = '"bare"'


def create_app() -> Litestar:
    payload = Path(os.environ["BENCH_BARE_PAYLOAD"]).read_text()
    body = payload.encode()
    channel = os.environ["BENCH_BARE_CHANNEL"]
    redis_url = os.environ["BENCH_BARE_REDIS"]
    bells: dict[str, set[asyncio.Event]] = {}

    async def listen() -> None:
        redis = Redis.from_url(redis_url)
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                async for message in pubsub.listen():
                    for agent in json.loads(message["data"]):
                        for bell in bells.get(agent, ()):
                            bell.set()
        finally:
            await redis.aclose()

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        task = asyncio.create_task(listen())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @get("/v1/realms/{realm_id:str}/agents/{agent_id:str}/prompt/stream")
    async def stream(agent_id: str) -> ServerSentEvent:
        async def changes() -> AsyncIterator[ServerSentEventMessage]:
            bell = asyncio.Event()
            bells.setdefault(agent_id, set()).add(bell)
            try:
                yield ServerSentEventMessage(data=payload, event="prompt")
                while True:
                    try:
                        await asyncio.wait_for(bell.wait(), HEARTBEAT_SECONDS)
                    except TimeoutError:
                        yield ServerSentEventMessage(comment="ping")
                        continue
                    bell.clear()
                    yield ServerSentEventMessage(data=payload, event="prompt")
            finally:
                bells[agent_id].discard(bell)

        return ServerSentEvent(changes())

    @get("/v1/realms/{realm_id:str}/agents/{agent_id:str}/prompt")
    async def prompt(agent_id: str, request: Request[Any, Any, Any]) -> Response[bytes]:
        """The payload, or with `wait` and a matching If-None-Match a long poll: the payload
        when the agent is named on the channel, 304 when `wait` seconds pass."""
        wait = int(request.query_params.get("wait", 0))
        if wait and request.headers.get("if-none-match") == ETAG:
            bell = asyncio.Event()
            bells.setdefault(agent_id, set()).add(bell)
            try:
                await asyncio.wait_for(bell.wait(), wait)
            except TimeoutError:
                return Response(b"", status_code=304, headers={"ETag": ETAG})
            finally:
                bells[agent_id].discard(bell)
        return Response(body, media_type="application/json", headers={"ETag": ETAG})

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(
        route_handlers=[stream, prompt, healthz], lifespan=[lifespan], logging_config=None
    )
