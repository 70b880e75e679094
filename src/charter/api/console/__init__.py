"""The operator console (`/console`, DESIGN §11, docs/console.md): server-rendered pages, a
small script of our own, no CDN and no build step."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Controller, Router
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from charter.api.auth import ACCESS
from charter.api.console.edits import EditController
from charter.api.console.hooks import WebhookPageController
from charter.api.console.pages import PageController
from charter.api.console.releases import ReleaseController
from charter.api.console.signin import SignInController
from charter.domain.access import Access

_HERE = Path(__file__).parent
STATIC_PATH = "/console/static"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return TemplateConfig(instance=JinjaTemplateEngine(engine_instance=environment))


def routers() -> list[Router | type[Controller]]:
    static = create_static_files_router(
        path=STATIC_PATH,
        directories=[_HERE / "static"],
        include_in_schema=False,
        opt={ACCESS: Access.PUBLIC},
        name="console-static",
    )
    return [
        SignInController,
        PageController,
        EditController,
        ReleaseController,
        WebhookPageController,
        static,
    ]
