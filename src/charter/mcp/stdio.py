"""`charter mcp --realm R --agent A`: the MCP server over stdio, for one agent.

A client of the Charter server at CHARTER_URL with CHARTER_KEY (charter.client); nothing of
the server side is needed here (the `mcp` extra). Subscriptions follow the server's prompt
stream (SSE). The key's revocation ends the session: the server ends the stream, the
reconnection is refused (401), and this process exits.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator

import anyio
from mcp.server.runner import serve_loop
from mcp.server.stdio import stdio_server

from charter.client import AsyncCharter, errors
from charter.mcp.server import Link, build

REVOKED_EXIT = 3


async def serve(url: str, key: str | None, realm: str, agent: str) -> int:
    charter = AsyncCharter(url, key, realm=realm)

    async def follow(realm_id: str, agent_id: str) -> AsyncIterator[str]:
        async for prompt in charter.watch(agent_id, realm=realm_id):
            yield prompt.composition_id

    link = Link(charter, follow, realm, agent)

    async def link_of(_: object) -> Link:
        return link

    server = build(link_of)
    refused: list[str] = []
    async with charter, stdio_server() as (read, write), anyio.create_task_group() as tasks:

        async def watchdog() -> None:
            """Follows the agent's prompt so that a revoked key ends the session at once."""
            try:
                async for _ in charter.watch(agent, realm=realm):
                    pass
            except errors.Unauthenticated as exc:
                refused.append(str(exc))
                tasks.cancel_scope.cancel()
            except errors.CharterError:
                return  # e.g. the agent owns nothing yet: the session goes on

        tasks.start_soon(watchdog)
        # The handshake era only, as over HTTP (ADR 0009): `Server.run` would let a client's
        # first `server/discover` lock the connection into the 2026 era, which has no
        # resources/subscribe.
        async with server.lifespan(server) as state:
            options = server.create_initialization_options()
            await serve_loop(server, read, write, lifespan_state=state, init_options=options)
        tasks.cancel_scope.cancel()
    if refused:
        print(f"charter mcp: the key was refused ({refused[0]}); ending", file=sys.stderr)
        return REVOKED_EXIT
    return 0


def run(url: str | None, key: str | None, realm: str | None, agent: str | None) -> int:
    url = url or os.environ.get("CHARTER_URL") or "http://127.0.0.1:8000"
    key = key or os.environ.get("CHARTER_KEY") or None
    realm = realm or os.environ.get("CHARTER_REALM") or None
    if not realm or not agent:
        print("charter mcp: give --realm (or CHARTER_REALM) and --agent", file=sys.stderr)
        return 2
    return anyio.run(serve, url, key, realm, agent)
