"""OPTIONS answers whose Allow header lists every method of the path.

Litestar (2.25) makes a path's automatic OPTIONS handler when the first handler for that path
is registered, and its Allow header keeps that first route's methods only: `OPTIONS
/v1/realms` said `OPTIONS, POST`, without `GET`. This middleware answers those requests itself,
from the app's final route table.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.enums import HttpMethod, ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)


def allowed_methods(app: Litestar) -> dict[str, str]:
    """Each route's path template (as routing names it) → its Allow header value."""
    return {
        route.path_format: ", ".join(sorted(route.methods))
        for route in app.routes
        if isinstance(route, HTTPRoute)
    }


class AllowMiddleware:
    """Answers Litestar's automatic OPTIONS requests with the route's full method list."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._allow: dict[str, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] == HttpMethod.OPTIONS:
            handler = scope["route_handler"]
            automatic = isinstance(handler, HTTPRouteHandler) and handler.http_methods == {
                HttpMethod.OPTIONS
            }
            if automatic:
                if self._allow is None:
                    self._allow = allowed_methods(scope["litestar_app"])
                allow = self._allow.get(scope["path_template"])
                if allow is not None:
                    start: HTTPResponseStartEvent = {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [(b"allow", allow.encode())],
                    }
                    body: HTTPResponseBodyEvent = {
                        "type": "http.response.body",
                        "body": b"",
                        "more_body": False,
                    }
                    await send(start)
                    await send(body)
                    return
        await self.app(scope, receive, send)
