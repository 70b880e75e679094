"""Headers every response carries, fast paths included: security headers, and CORS for the
origins `CHARTER_CORS_ORIGINS` names (off by default).

`CharterApp` (app.py) wraps every HTTP request's `send` here, before the edge, the fast path
and routing, so a cached prompt read answered before routing carries exactly the headers the
routed answer does (DESIGN §12); a cached read answered at once adds `Headers.added` itself,
the same headers without the wrapper. A preflight from a named origin is answered here too: it
needs no key, and Litestar's own OPTIONS answer knows nothing of CORS.

The console (`/console`) is same-origin only: no CORS header is ever added to its answers, so
a named origin can read the API and its streams, never a console page or its CSRF token.
"""

from __future__ import annotations

from litestar.types import HTTPScope, Message, Send

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
ALLOW_METHODS = b"GET, POST, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = (
    b"Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, Last-Event-ID, "
    b"X-Request-Id"
)
EXPOSE_HEADERS = b"ETag, Location, Retry-After, Idempotent-Replayed, X-Request-Id"
MAX_AGE = b"600"
_CONSOLE = "/console"


def _origin(scope: HTTPScope) -> tuple[bytes | None, bool]:
    """(the Origin header, whether this is a CORS preflight)."""
    origin = None
    preflight = False
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value
        elif name == b"access-control-request-method":
            preflight = True
    return origin, preflight and scope["method"] == "OPTIONS"


class Headers:
    """The headers for one app: its allowed origins, made once."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self.origins = frozenset(o.encode() for o in origins)

    def _cors(self, scope: HTTPScope, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        if not self.origins:
            return []
        path: str = scope["path"]
        if path == _CONSOLE or path.startswith(_CONSOLE + "/"):
            return []
        if origin is None or origin not in self.origins:
            return [(b"vary", b"Origin")]
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", EXPOSE_HEADERS),
            (b"vary", b"Origin"),
        ]

    async def preflight(self, scope: HTTPScope, send: Send) -> bool:
        """Answer a CORS preflight from an allowed origin (204); False: not one, go on."""
        origin, preflight = _origin(scope)
        if not preflight or not self.origins:
            return False
        cors = self._cors(scope, origin)
        if len(cors) < 2:  # not an allowed origin: the ordinary OPTIONS answer, no CORS
            return False
        headers = [
            *cors,
            (b"access-control-allow-methods", ALLOW_METHODS),
            (b"access-control-allow-headers", ALLOW_HEADERS),
            (b"access-control-max-age", MAX_AGE),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True

    def added(self, scope: HTTPScope, origin: bytes | None) -> tuple[tuple[bytes, bytes], ...]:
        """The headers `wrap` adds to an answer that has none of them: the security headers
        and, for a request from `origin`, the CORS headers."""
        if not self.origins:
            return SECURITY_HEADERS
        return (*SECURITY_HEADERS, *self._cors(scope, origin))

    def wrap(self, scope: HTTPScope, send: Send) -> Send:
        """`send`, adding the security headers and (for an allowed origin) CORS headers."""
        extra = self.added(scope, _origin(scope)[0])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                added = [h for h in extra if h[0] not in present or h[0] == b"vary"]
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        return send_with_headers
