"""create_app(settings) -> Litestar: lifespan, routes and the problem map, built explicitly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import Receive, Scope, Send

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
from charter.runtime import open_runtime
from charter.settings import Settings
from charter.signals import on_stop


class CharterApp(Litestar):
    """Litestar, with the cached prompt read answered before routing (api/fastpath.py)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if scope["type"] == ScopeType.HTTP:
            runtime = self.state.get("runtime")  # absent until the lifespan has started
            if runtime is not None and await fastpath.answer(runtime, scope, send):
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, stop_on_signals: bool = False) -> Litestar:
    """The app; with `stop_on_signals`, SIGTERM and SIGINT end its streams (signals.py)."""

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
    return create_app(Settings.from_env(), stop_on_signals=True)
