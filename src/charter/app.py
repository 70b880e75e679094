"""create_app(settings) -> Litestar: lifespan, routes and the problem map, built explicitly."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.enums import ScopeType
from litestar.types import HTTPScope, Receive, Scope, Send

from charter import logs
from charter.api import console, cors, edges, fastpath, fastwrite
from charter.api.agents import AgentController
from charter.api.auth import AuthorizeMiddleware
from charter.api.claims import ClaimController
from charter.api.deps import DEPENDENCIES
from charter.api.directives import DirectiveController
from charter.api.events import EventController, event_json
from charter.api.inject import InjectController
from charter.api.keys import KeyController
from charter.api.mcp import McpEndpoint, mount
from charter.api.openapi import ClosedRequestSchemas, DocumentedProblems, document, openapi_config
from charter.api.options import AllowMiddleware
from charter.api.problems import EXCEPTION_HANDLERS
from charter.api.realms import RealmController
from charter.api.rollouts import OutcomeController, RolloutController
from charter.api.schedules import ScheduleController
from charter.api.system import healthz, metrics, readyz
from charter.api.variables import VariablesController
from charter.api.webhooks import WebhookController
from charter.observability.asgi import finished, observe
from charter.observability.logs import REQUEST_ID_HEADER, request_id
from charter.runtime import Runtime, open_runtime
from charter.settings import Settings
from charter.signals import on_stop


class CharterApp(Litestar):
    """Litestar behind the HTTP edge (api/edges.py), with the cached prompt read
    (api/fastpath.py) and the directive PATCH (api/fastwrite.py) answered before routing:
    the edge holds for all of them."""

    body_timeout_seconds = 30.0
    headers = cors.Headers(())
    # The lifespan's runtime (also `state.runtime`), read here without State's lookup: this
    # runs for every request. None until the lifespan started.
    runtime: Runtime | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if scope["type"] != ScopeType.HTTP:
            await super().__call__(scope, receive, send)
            return
        http: HTTPScope = scope
        runtime = self.runtime
        read = None
        if runtime is not None:
            started = time.perf_counter()
            read = fastpath.cached_read(runtime, http)
            if read is not None and read.at_once and runtime.tracer is None:
                # What every answer gets (DESIGN §12), given here in one step rather than by
                # the layers below: the edge has nothing to do for a read the fast path takes
                # (fastpath.py), and without tracing there is no span.
                rid = request_id(read.headers.get(REQUEST_ID_HEADER))
                status = 304 if read.unchanged else 200
                try:
                    await fastpath.send_answer(
                        send, status, read.entry, self._added(http, read, rid)
                    )
                finally:
                    finished(runtime.metrics, "GET", fastpath.ROUTE, status, started, rid)
                return

        async def handle(send: Send) -> str | None:
            inbound = receive
            send = self.headers.wrap(http, send)
            if await self.headers.preflight(http, send):
                return None
            head = edges.Head.of(http["headers"])
            refused = edges.refusal(http, head)
            if refused is not None or head.has_body:  # without a body, nothing to guard
                guard = edges.Guard(head, inbound, send, self.body_timeout_seconds)
                if refused is not None:
                    await guard.refuse(*refused)
                    return None
                inbound, send = guard.receive, guard.send
            if runtime is not None:
                if read is not None and await fastpath.answer(runtime, read, send):
                    return fastpath.ROUTE
                routed = await fastwrite.answer(runtime, http, inbound, send)
                if routed is None:
                    return fastwrite.ROUTE
                inbound = routed
            await super(CharterApp, self).__call__(http, inbound, send)
            return None

        if runtime is None:
            await handle(send)
            return
        # The request id, metrics and the trace span wrap the edge and the fast path too
        # (DESIGN §12): a refusal at the edge is counted and carries its request id.
        await observe(runtime.metrics, runtime.tracer, http, handle, send)

    def _added(
        self, scope: HTTPScope, read: fastpath.Read, rid: str
    ) -> tuple[tuple[bytes, bytes], ...]:
        """The headers `headers.wrap` and `observe` add, for a read answered at once: the
        security and CORS headers, then the request id. (Nothing logs during such a read,
        so the request id's context variable is left unset; the access line names it.)"""
        origin = read.headers.get(b"origin")
        return (*self.headers.added(scope, origin), (REQUEST_ID_HEADER, rid.encode()))


def create_app(
    settings: Settings,
    *,
    stop_on_signals: bool = False,
    tracer_provider: Any = None,
    deliver_webhooks: bool = True,
) -> Litestar:
    """The app; with `stop_on_signals`, SIGTERM and SIGINT end its streams (signals.py).
    `tracer_provider`: an OpenTelemetry TracerProvider to trace with (tests); without one,
    traces follow the OTEL_* variables (settings.tracing). Without `deliver_webhooks`, the
    process sends no webhook deliveries but manual retries (tests whose app would compete
    with the server processes that webhook tests start with settings of their own)."""
    logs.install()  # one request, one log line: logged values are escaped
    mcp = McpEndpoint()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime(settings, tracer_provider=tracer_provider) as runtime:
            app.state.runtime = runtime
            runtime.deliver_webhooks(event_json, loop=deliver_webhooks)
            if isinstance(app, CharterApp):
                app.runtime = runtime
            undo = on_stop(runtime.stop_streams) if stop_on_signals else None
            try:
                async with mcp.running():
                    yield
            finally:
                if undo is not None:
                    undo()

    app = CharterApp(
        route_handlers=[
            RealmController,
            DirectiveController,
            AgentController,
            # Its own body limit: a long history with images runs to megabytes.
            Router(
                "/",
                route_handlers=[InjectController],
                request_max_body_size=settings.max_inject_bytes,
            ),
            ClaimController,
            ScheduleController,
            EventController,
            WebhookController,
            KeyController,
            mount(mcp),
            RolloutController,
            OutcomeController,
            VariablesController,
            healthz,
            readyz,
            metrics,
            *console.routers(),
        ],
        template_config=console.template_config(),
        dependencies=DEPENDENCIES,
        middleware=[AuthorizeMiddleware, AllowMiddleware],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        request_max_body_size=settings.max_request_bytes,
        openapi_config=openapi_config(),
        plugins=[DocumentedProblems(), ClosedRequestSchemas()],
        logging_config=None,
    )
    app.body_timeout_seconds = settings.body_timeout_seconds
    app.headers = cors.Headers(settings.cors_origins)
    document(app)  # built and finished now: a mistake in it fails at start, not at a request
    return app


def app_from_env() -> Litestar:
    """The factory `charter serve` hands to the ASGI server."""
    return create_app(Settings.from_env(), stop_on_signals=True)
