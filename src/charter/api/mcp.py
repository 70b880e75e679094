"""MCP over Streamable HTTP at /mcp: the SDK's session manager, mounted in the app.

A mount, so each MCP request goes through the same edge, request id, metrics and key check as
every route (`Access.ANY`: any valid key; what it may then do is the REST API's to say, since
the MCP server calls it with the same key, in process). Each HTTP request is also held under
its key (cache/holds.py), like a stream: revoking the key ends its requests in flight, the
standalone event stream included, and terminates its MCP sessions. A session belongs to the
key that opened it; another key naming it gets 404.

The session's home realm and agent come from the URL (`/mcp?realm=R&agent=A`), else from
the key: an agent key's agent, and its realm when it has exactly one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import httpx
from litestar import asgi
from litestar.types import Receive, Scope, Send
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from charter.api.agents import changed
from charter.api.auth import ACCESS
from charter.api.edges import problem_bytes
from charter.api.problems import PROBLEM_MEDIA_TYPE
from charter.cache.watch import Ending
from charter.client import AsyncCharter
from charter.domain.access import ALL_REALMS, Access, Caller
from charter.errors import Unauthenticated
from charter.mcp.server import Link, Subscriptions, build
from charter.runtime import Runtime

PATH = "/mcp"
_SESSION_HEADER = b"mcp-session-id"
_FOLLOW_SECONDS = 10  # how long a follower may outlive its session
_CALLER = "charter.mcp.caller"
_SECRET = "charter.mcp.secret"


class McpEndpoint:
    """The MCP server, its session manager, and which key owns which session."""

    def __init__(self) -> None:
        self.server = build(self._link)
        self.manager = self._new_manager()
        self._owners: dict[str, str] = {}  # session id -> key id
        self._apps: dict[str, Any] = {}  # the Litestar app, once it serves (for the links)
        self._clients: dict[str, AsyncCharter] = {}  # key id -> the in-process client

    def _new_manager(self) -> StreamableHTTPSessionManager:
        return StreamableHTTPSessionManager(app=self.server, session_idle_timeout=600)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        # A manager runs once: an app whose lifespan starts again (tests, an embedding host)
        # gets a new one, and no session of the last run is anyone's now.
        self.manager = self._new_manager()
        self._owners.clear()
        async with self.manager.run():
            try:
                yield
            finally:
                for client in self._clients.values():
                    await client.aclose()
                self._clients.clear()

    async def _link(self, ctx: ServerRequestContext[Subscriptions]) -> Link:
        request = ctx.request
        scope: dict[str, Any] = request.scope  # type: ignore[union-attr]
        caller: Caller = scope[_CALLER]
        secret: str = scope[_SECRET]
        runtime: Runtime = scope["litestar_app"].state.runtime
        client = self._clients.get(caller.key_id)
        if client is None:
            # The REST API, in process, as this key: every rule of it holds for MCP too.
            transport = httpx.ASGITransport(app=cast(Any, scope["litestar_app"]))
            client = AsyncCharter("http://charter.mcp", secret, transport=transport)
            self._clients[caller.key_id] = client
        query = request.query_params  # type: ignore[union-attr]
        realms = sorted(caller.realms - {ALL_REALMS})
        realm = query.get("realm") or (realms[0] if len(realms) == 1 else None)
        agent = query.get("agent") or caller.agent_id

        session = request.headers.get("mcp-session-id")  # type: ignore[union-attr]

        async def follow(realm_id: str, agent_id: str) -> AsyncIterator[str]:
            """The prompt's composition ids, woken by the hub as long polls are, for as long
            as the MCP session that subscribed lasts."""
            entry = await runtime.prompts.current(realm_id, agent_id)
            yield entry.composition_id
            while session is None or session in self._sessions():
                entry = await changed(
                    runtime,
                    caller.key_id,
                    realm_id,
                    agent_id,
                    {entry.composition_id},
                    _FOLLOW_SECONDS,
                )
                if runtime.hub.holds.closing:
                    return
                yield entry.composition_id

        return Link(client, _dedupe(follow), realm, agent, role=caller.role.value)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """One HTTP request under /mcp (ASGI, in the session manager's own types)."""
        caller: Caller = scope["state"]["caller"]
        runtime: Runtime = scope["litestar_app"].state.runtime
        session = _header(scope, _SESSION_HEADER)
        if session is not None and self._owners.get(session, caller.key_id) != caller.key_id:
            await _refuse(send, 404, "not-found", "no such MCP session")
            return
        scope[_CALLER] = caller
        scope[_SECRET] = _bearer(scope)
        # The mount hands on the path below /mcp; the session manager answers any path.
        with runtime.hub.holds.hold(caller.key_id) as watch:
            async with anyio.create_task_group() as tasks:

                async def ended() -> None:
                    while watch.ended is None:
                        await watch.wait(3600)
                    if watch.ended is Ending.REVOKED:
                        # Ending the session ends its streams cleanly; what is still
                        # running a moment later is cut off.
                        await self._end_sessions_of(caller.key_id)
                        await anyio.sleep(0.2)
                    tasks.cancel_scope.cancel()

                async def noted(message: MutableMapping[str, Any]) -> None:
                    if message["type"] == "http.response.start":
                        for name, value in message.get("headers", []):
                            if name.lower() == _SESSION_HEADER:
                                self._owners[value.decode("latin-1")] = caller.key_id
                    await send(message)

                tasks.start_soon(ended)
                await self.manager.handle_request(scope, receive, noted)
                tasks.cancel_scope.cancel()

    def _sessions(self) -> Any:
        """The session ids the manager serves now (its own map: it has no public one)."""
        return getattr(self.manager, "_server_instances", {})

    async def _end_sessions_of(self, key_id: str) -> None:
        mine = [sid for sid, owner in self._owners.items() if owner == key_id]
        # The SDK has no public call to end a session from the server side; its transport
        # does, and the manager then forgets the session (a request naming it gets 404).
        transports = self._sessions()
        for sid in mine:
            self._owners.pop(sid, None)
            transport = transports.get(sid)
            if transport is not None:
                await transport.terminate()
        client = self._clients.pop(key_id, None)
        if client is not None:
            await client.aclose()


def _dedupe(follow: Any) -> Any:
    """Only new composition ids: a long poll that timed out answers the same one again."""

    async def changes(realm_id: str, agent_id: str) -> AsyncIterator[str]:
        last: str | None = None
        try:
            async for composition_id in follow(realm_id, agent_id):
                if composition_id != last:
                    last = composition_id
                    yield composition_id
        except Unauthenticated:
            return  # the key was revoked: its sessions end too

    return changes


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer(scope: dict[str, Any]) -> str:
    header = _header(scope, b"authorization") or ""
    return header.partition(" ")[2].strip()


async def _refuse(send: Any, status: int, code: str, detail: str) -> None:
    body = problem_bytes(status, code, detail)
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def mount(endpoint: McpEndpoint) -> Any:
    """The route handler: /mcp and below, for any valid key."""

    @asgi(PATH, is_mount=True, opt={ACCESS: Access.ANY}, copy_scope=True)
    async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await endpoint(cast(dict[str, Any], scope), receive, send)

    return mcp_endpoint
