"""create_app(settings) -> Litestar: lifespan, routes and the problem map, built explicitly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from charter.api.agents import AgentController
from charter.api.auth import OPENAPI_PATH, AuthorizeMiddleware
from charter.api.deps import DEPENDENCIES
from charter.api.directives import DirectiveController
from charter.api.events import EventController
from charter.api.keys import KeyController
from charter.api.problems import EXCEPTION_HANDLERS
from charter.api.realms import RealmController
from charter.api.system import healthz, metrics, readyz
from charter.runtime import open_runtime
from charter.settings import Settings


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            app.state.runtime = runtime
            yield

    return Litestar(
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
        middleware=[AuthorizeMiddleware],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        request_max_body_size=settings.max_request_bytes,
        openapi_config=OpenAPIConfig(
            title="Charter",
            version="1",
            path=OPENAPI_PATH,
            render_plugins=[SwaggerRenderPlugin()],
        ),
        logging_config=None,
    )


def app_from_env() -> Litestar:
    """The factory `charter serve` hands to the ASGI server."""
    return create_app(Settings.from_env())
