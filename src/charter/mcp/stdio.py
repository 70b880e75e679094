"""`charter mcp --realm R --agent A`: the MCP server over stdio, for one agent.

A client of the Charter server at CHARTER_URL with CHARTER_KEY (charter.client); nothing of
the server side is needed here (the `mcp` extra). Subscriptions follow the server's prompt
stream (SSE). The key's revocation ends the session whether or not the client is sending:
the server ends the prompt stream this process follows, the reconnection is refused (401),
and the process exits with status 3 (`REVOKED_EXIT`) within a second or so. A 401 answered
to any request ends it the same way.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.runner import serve_loop
from mcp.shared.message import SessionMessage

from charter.client import AsyncCharter, errors
from charter.mcp.server import Link, build

REVOKED_EXIT = 3
# How often the key is checked while the agent's prompt cannot be followed (404: the agent
# owns nothing yet; 403: not this key's agent): revocation is then noticed within this.
POLL_SECONDS = 1.0
# After a refusal, what is in flight may still be answered before the session ends.
_GRACE_SECONDS = 0.1
_CHUNK = 65536

Incoming = MemoryObjectReceiveStream[SessionMessage | Exception]
Outgoing = MemoryObjectSendStream[SessionMessage]
Refused = Callable[[errors.Unauthenticated], None]


async def serve(url: str, key: str | None, realm: str, agent: str) -> int:
    charter = AsyncCharter(url, key, realm=realm)

    async def follow(realm_id: str, agent_id: str) -> AsyncIterator[str]:
        async for prompt in charter.watch(agent_id, realm=realm_id):
            yield prompt.composition_id

    link = Link(charter, follow, realm, agent)

    async def link_of(_: object) -> Link:
        return link

    refusals: list[errors.Unauthenticated] = []
    refused_now = anyio.Event()

    def refused(exc: errors.Unauthenticated) -> None:
        refusals.append(exc)
        refused_now.set()

    server = build(link_of, refused)
    async with charter, _wire() as (read, write), anyio.create_task_group() as tasks:

        async def end_when_refused() -> None:
            await refused_now.wait()
            await anyio.sleep(_GRACE_SECONDS)
            tasks.cancel_scope.cancel()

        tasks.start_soon(watch_key, charter, realm, agent, refused)
        tasks.start_soon(end_when_refused)
        # The handshake era only, as over HTTP (ADR 0009): `Server.run` would let a client's
        # first `server/discover` lock the connection into the 2026 era, which has no
        # resources/subscribe.
        async with server.lifespan(server) as state:
            options = server.create_initialization_options()
            await serve_loop(server, read, write, lifespan_state=state, init_options=options)
        tasks.cancel_scope.cancel()
    if refusals:
        # The problem's detail only ("the key is unknown or revoked"): never the key.
        print(f"charter mcp: the key was refused ({refusals[0]}); ending", file=sys.stderr)
        return REVOKED_EXIT
    return 0


async def watch_key(charter: AsyncCharter, realm: str, agent: str, refused: Refused) -> None:
    """Tells `refused` once the server refuses the key: at once while the agent's prompt
    stream is followed (revocation ends it, and the reconnection is a 401), else within
    POLL_SECONDS, asking for the prompt until it can be followed again."""
    while True:
        try:
            async for _ in charter.watch(agent, realm=realm):
                pass
        except errors.Unauthenticated as exc:
            refused(exc)
            return
        except errors.CharterError:
            pass  # not to be followed now (404, 403): asked for below instead
        while True:
            await anyio.sleep(POLL_SECONDS)
            try:
                await charter.prompt(agent, realm=realm)
            except errors.Unauthenticated as exc:
                refused(exc)
                return
            except errors.CharterError:
                continue
            break


@asynccontextmanager
async def _wire() -> AsyncIterator[tuple[Incoming, Outgoing]]:
    """stdin and stdout as the session's streams of messages, one JSON-RPC message a line.

    Not the SDK's `stdio_server`: it reads stdin in a worker thread, which no cancellation
    stops, so a session the server ends (a revoked key) would linger until the client's next
    line, and then fail on it. Here stdin is read when the event loop says it is readable,
    and ending is immediate. While serving, fd 1 points at stderr, so nothing stray printed
    in this process can break the wire."""
    to_session, incoming = anyio.create_memory_object_stream[SessionMessage | Exception]()
    outgoing, to_stdout = anyio.create_memory_object_stream[SessionMessage]()
    stdout = os.dup(1)
    with contextlib.suppress(OSError):  # without a stderr, fd 1 stays the wire
        os.dup2(2, 1)
    reading = anyio.CancelScope()
    try:
        async with anyio.create_task_group() as tasks:

            async def read() -> None:
                with reading:
                    await _read_stdin(0, to_session)

            tasks.start_soon(read)
            tasks.start_soon(_write_stdout, to_stdout, stdout)
            try:
                yield incoming, outgoing
            finally:
                reading.cancel()
                outgoing.close()  # the writer sends what it has, then ends
    finally:
        os.dup2(stdout, 1)
        os.close(stdout)


async def _read_stdin(
    fd: int, messages: MemoryObjectSendStream[SessionMessage | Exception]
) -> None:
    with messages:
        pending = b""
        while chunk := await _read_chunk(fd):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line.strip():
                    await messages.send(_message(line))
        if pending.strip():
            await messages.send(_message(pending))


async def _read_chunk(fd: int) -> bytes:
    """What stdin has now (b"" at its end), waited for in the event loop where it can be."""
    while True:
        try:
            await anyio.wait_readable(fd)
        except OSError:
            # Not pollable: a regular file or /dev/null (epoll refuses them; reading them
            # never blocks), or a pipe on Windows (select takes sockets only). A worker
            # thread reads it then, as the SDK does; abandoned when the session ends (a
            # revocation), so a read that blocks never holds the process open.
            return await anyio.to_thread.run_sync(os.read, fd, _CHUNK, abandon_on_cancel=True)
        try:
            return os.read(fd, _CHUNK)
        except BlockingIOError:
            continue  # a non-blocking pipe that another reader emptied first


def _message(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:  # pydantic's ValidationError, for a line that is not JSON-RPC
        return exc  # the session answers nothing to it, as the SDK's stdio transport does


async def _write_stdout(messages: MemoryObjectReceiveStream[SessionMessage], fd: int) -> None:
    gone = False
    with messages:
        async for message in messages:
            line = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
            if not gone:
                try:
                    await anyio.to_thread.run_sync(_write_all, fd, line.encode())
                except OSError:
                    gone = True  # the client closed its end: its stdin's end follows


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def run(url: str | None, key: str | None, realm: str | None, agent: str | None) -> int:
    url = url or os.environ.get("CHARTER_URL") or "http://127.0.0.1:8000"
    key = key or os.environ.get("CHARTER_KEY") or None
    realm = realm or os.environ.get("CHARTER_REALM") or None
    if not realm or not agent:
        print("charter mcp: give --realm (or CHARTER_REALM) and --agent", file=sys.stderr)
        return 2
    return anyio.run(serve, url, key, realm, agent)
