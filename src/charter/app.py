"""create_app(settings) -> Litestar: lifespan, routes and the problem map, built explicitly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import Receive, Scope, Send

from charter import logs
from charter.api import edges, fastpath
from charter.api.agents import AgentController
from charter.api.auth import AuthorizeMiddleware
from charter.api.deps import DEPENDENCIES
from charter.api.directives import DirectiveController
from charter.api.events import EventController
from charter.api.keys import KeyController
from charter.api.openapi import ClosedRequestSchemas, DocumentedProblems, document, openapi_config
from charter.api.options import AllowMiddleware
from charter.api.problems import EXCEPTION_HANDLERS
from charter.api.realms import RealmController
from charter.api.system import healthz, metrics, readyz
from charter.runtime import open_runtime
from charter.settings import Settings
from charter.signals import on_stop


class CharterApp(Litestar):
    """Litestar behind the HTTP edge (api/edges.py), with the cached prompt read answered
    before routing (api/fastpath.py): the edge holds for both."""

    body_timeout_seconds = 30.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if scope["type"] == ScopeType.HTTP:
            head = edges.Head.of(scope["headers"])
            refused = edges.refusal(scope, head)
            if refused is not None or head.has_body:  # without a body, nothing to guard
                guard = edges.Guard(head, receive, send, self.body_timeout_seconds)
                if refused is not None:
                    await guard.refuse(*refused)
                    return
                receive, send = guard.receive, guard.send
            runtime = self.state.get("runtime")  # absent until the lifespan has started
            if runtime is not None and await fastpath.answer(runtime, scope, send):
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, stop_on_signals: bool = False) -> Litestar:
    """The app; with `stop_on_signals`, SIGTERM and SIGINT end its streams (signals.py)."""
    logs.install()  # one request, one log line: logged values are escaped

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            app.state.runtime = runtime
            undo = on_stop(runtime.stop_streams) if stop_on_signals else None
            try:
                yield
            finally:
                if undo is not None:
                    undo()

    app = CharterApp(
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
    app.body_timeout_seconds = settings.body_timeout_seconds
    document(app)  # built and finished now: a mistake in it fails at start, not at a request
    return app


def app_from_env() -> Litestar:
    """The factory `charter serve` hands to the ASGI server."""
    return create_app(Settings.from_env(), stop_on_signals=True)
