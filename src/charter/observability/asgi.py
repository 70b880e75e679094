"""What wraps every HTTP request, fast paths included: the request id, metrics, the access
line and (when tracing is on) the request's span.

It sits outside everything else (app.py), so a cached prompt read answered before routing
gets exactly what a routed request gets. A cached read answered at once without tracing
skips the wrapper and gets the same from its parts (`request_id`, `finished`): a request id
header, the count and latency, the access line (docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from litestar.types import HTTPScope, Message, Send

from charter.metrics import Metrics
from charter.observability.logs import ACCESS_LOGGER, REQUEST_ID, REQUEST_ID_HEADER, request_id

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

access_log = logging.getLogger(ACCESS_LOGGER)

# Methods outside these are labelled OTHER: a label value per made-up method would not do.
_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
UNMATCHED: Final = "unmatched"  # the route label of a path no route has

# Answers the request; returns the route template when it answered without routing.
Handler = Callable[[Send], Awaitable[str | None]]


def _template(scope: HTTPScope) -> str | None:
    """The route template of the request: Litestar's, or for a mount (/mcp) the mount's path,
    which Litestar leaves empty."""
    template = scope.get("path_template")
    if template:
        return template
    handler = scope.get("route_handler")
    if handler is not None and getattr(handler, "is_mount", False):
        paths = sorted(getattr(handler, "paths", ()))
        return paths[0] if paths else None
    return None


async def observe(
    metrics: Metrics,
    tracer: Tracer | None,
    scope: HTTPScope,
    handle: Handler,
    send: Send,
) -> None:
    incoming = None
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            incoming = value
            break
    rid = request_id(incoming)
    id_header = (REQUEST_ID_HEADER, rid.encode())
    status = 500

    async def send_with_id(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            message["headers"] = [*message.get("headers", ()), id_header]
        await send(message)

    token = REQUEST_ID.set(rid)
    started = time.perf_counter()
    route: str | None = None
    try:
        if tracer is None:
            route = await handle(send_with_id)
        else:
            route = await _traced(tracer, scope, handle, send_with_id, lambda: status)
    finally:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        template: str = route or _template(scope) or UNMATCHED
        finished(metrics, method, template, status, started, rid)
        REQUEST_ID.reset(token)


def finished(
    metrics: Metrics, method: str, template: str, status: int, started: float, rid: str
) -> None:
    """Count an answered request (`started`: its perf_counter reading) and log its access
    line, which names its request id itself (it is logged outside the request's context on
    the answer at once, app.py)."""
    seconds = time.perf_counter() - started
    metrics.request(method, template, status, seconds)
    if access_log.isEnabledFor(logging.INFO):
        fields = {"method": method, "route": template, "status": status}
        fields["duration_ms"] = round(seconds * 1000, 3)
        extra = {"charter": fields, "request_id": rid}
        access_log.info("%s %s %d", method, template, status, extra=extra)


async def _traced(
    tracer: Tracer,
    scope: HTTPScope,
    handle: Handler,
    send: Send,
    status: Callable[[], int],
) -> str | None:
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind, Status, StatusCode

    carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    method = scope["method"]
    attributes: dict[str, Any] = {"http.request.method": method, "url.path": scope["path"]}
    with tracer.start_as_current_span(
        method, context=extract(carrier), kind=SpanKind.SERVER, attributes=attributes
    ) as span:
        route = await handle(send)
        template = route or _template(scope)
        if template:
            span.update_name(f"{method} {template}")
            span.set_attribute("http.route", template)
        span.set_attribute("http.response.status_code", status())
        if status() >= 500:
            span.set_status(Status(StatusCode.ERROR))
        return route
