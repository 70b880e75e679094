"""DESIGN §5's read baseline: a bare ASGI callable, no framework, returning Charter's bytes.

Like `bare.py` (the bare Litestar route), `scripts/bench` writes the prompt's body and ETag
to files and serves this under the same granian options as Charter. It answers the prompt
path with the same status line, headers (`content-type`, `etag`, `content-length`) and body,
and `If-None-Match` with the same ETag → 304 without a body, as Charter does; anything else
is 404. It reads nothing but the path and that one header: the least a server can do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

Scope = dict[str, Any]
Receive = Any
Send = Any

_PREFIX = "/v1/realms/"
_SUFFIX = "/prompt"


def create_app() -> Any:
    payload = Path(os.environ["BENCH_BARE_PAYLOAD"]).read_bytes()
    etag = Path(os.environ["BENCH_BARE_ETAG"]).read_text().strip().encode()
    full = [
        (b"content-type", b"application/json"),
        (b"etag", etag),
        (b"content-length", str(len(payload)).encode()),
    ]
    not_modified = [(b"etag", etag)]
    healthy = b'{"status":"ok"}'
    health_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(healthy)).encode()),
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path: str = scope["path"]
        if path == "/healthz":
            status, headers, body = 200, health_headers, healthy
        elif path.startswith(_PREFIX) and path.endswith(_SUFFIX):
            status, headers, body = 200, full, payload
            for name, value in scope["headers"]:
                if name == b"if-none-match" and value == etag:
                    status, headers, body = 304, not_modified, b""
                    break
        else:
            status, headers, body = 404, [(b"content-length", b"0")], b""
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return app
