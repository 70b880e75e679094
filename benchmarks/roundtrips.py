"""Count database round trips honestly: a loopback TCP proxy in front of PostgreSQL.

A round trip is a turn of the conversation: the client sends, then waits for the server. The
proxy counts each burst of client bytes that follows server bytes (or opens the connection),
whatever the driver or ORM does underneath (BEGIN, prepares, set_config, COMMIT).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


class Proxy:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.turns = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.upstream)
        # The side that spoke last: a client burst after the server (or at start) is a turn.
        state = {"last": "server"}

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, side: str) -> None:
            try:
                while data := await r.read(65536):
                    if side == "client" and state["last"] == "server":
                        self.turns += 1
                    state["last"] = side
                    w.write(data)
                    await w.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    w.close()

        await asyncio.gather(pump(client_r, server_w, "client"), pump(server_r, client_w, "server"))


@contextlib.contextmanager
def statement_log(engine: AsyncEngine) -> Any:
    """Collect what SQLAlchemy sends: BEGIN, each statement, COMMIT/ROLLBACK."""
    log: list[str] = []
    sync = engine.sync_engine
    hooks: list[tuple[str, Callable[..., None]]] = [
        ("begin", lambda *_: log.append("BEGIN")),
        ("commit", lambda *_: log.append("COMMIT")),
        ("rollback", lambda *_: log.append("ROLLBACK")),
        ("before_cursor_execute", lambda _c, _cur, stmt, *_: log.append(" ".join(stmt.split()))),
    ]
    for name, fn in hooks:
        event.listen(sync, name, fn)
    try:
        yield log
    finally:
        for name, fn in hooks:
            event.remove(sync, name, fn)


@contextlib.asynccontextmanager
async def proxied(host: str, port: int) -> AsyncIterator[Proxy]:
    proxy = Proxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
