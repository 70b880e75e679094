"""create_app(settings) -> Litestar: lifespan, routes and the problem map, built explicitly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import HTTPScope, Receive, Scope, Send

from charter.api import fastpath
from charter.api.agents import AgentController
from charter.api.auth import AuthorizeMiddleware
from charter.api.deps import DEPENDENCIES
from charter.api.directives import DirectiveController
from charter.api.events import EventController
from charter.api.keys import KeyController
from charter.api.openapi import ClosedRequestSchemas, DocumentedProblems, openapi_config
from charter.api.options import AllowMiddleware
from charter.api.problems import EXCEPTION_HANDLERS
from charter.api.realms import RealmController
from charter.api.system import healthz, metrics, readyz
from charter.observability.asgi import observe
from charter.runtime import Runtime, open_runtime
from charter.settings import Settings


class CharterApp(Litestar):
    """Litestar, with the cached prompt read answered before routing (api/fastpath.py)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        runtime: Runtime | None = self.state.get("runtime")  # None until the lifespan started
        if scope["type"] != ScopeType.HTTP or runtime is None:
            await super().__call__(scope, receive, send)
            return
        http: HTTPScope = scope

        async def handle(send: Send) -> str | None:
            if await fastpath.answer(runtime, http, send):
                return fastpath.ROUTE
            await super(CharterApp, self).__call__(http, receive, send)
            return None

        # The request id, metrics and the trace span wrap the fast path too (DESIGN §12).
        await observe(runtime.metrics, runtime.tracer, http, handle, send)


def create_app(settings: Settings, *, tracer_provider: Any = None) -> Litestar:
    """`tracer_provider`: an OpenTelemetry TracerProvider to trace with (tests); without one,
    traces follow the OTEL_* variables (settings.tracing)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime(settings, tracer_provider=tracer_provider) as runtime:
            app.state.runtime = runtime
            yield

    return CharterApp(
        route_handlers=[
            RealmController,
            DirectiveController,
            AgentController,
            EventController,
            KeyController,
            healthz,
            readyz,
            metrics,
        ],
        dependencies=DEPENDENCIES,
        middleware=[AuthorizeMiddleware, AllowMiddleware],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        request_max_body_size=settings.max_request_bytes,
        openapi_config=openapi_config(),
        plugins=[DocumentedProblems(), ClosedRequestSchemas()],
        logging_config=None,
    )


def app_from_env() -> Litestar:
    """The factory `charter serve` hands to the ASGI server."""
    return create_app(Settings.from_env())
