"""The console's webhooks page per realm: list, add (the signing secret shown once, on the
answer to the add), delete, a webhook's delivery log and a retry of one delivery.

Operator and admin keys only, as on the API (a webhook's URL and log are not a reader's);
the same services as the API's webhook routes.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from charter.api import params
from charter.api.console.session import check_form, runtime_of, signed_in
from charter.api.console.views import EXCEPTION_HANDLERS, PAGE_LIMIT, PUBLIC, page, require
from charter.domain.access import Access
from charter.errors import InvalidRequest, NotFound
from charter.ids import SUFFIX
from charter.runtime import Runtime
from charter.services import webhooks as webhook_service
from charter.services.deliveries import Deliverer
from charter.services.sessions import Session
from charter.store import realms, webhooks
from charter.store.webhooks import Webhook

_REALM = "/realms/{realm_id:str}/webhooks"
_WEBHOOK_ID = re.compile(f"whk_{SUFFIX}")
_DELIVERY_ID = re.compile(f"dlv_{SUFFIX}")
_AGENT = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_URL_MAX = 2048
_LIST_MAX = 64


def _webhook_id(value: str) -> str:
    if _WEBHOOK_ID.fullmatch(value) is None:
        raise NotFound(f"webhook {value!r} not found")
    return value


def words(value: str | None, what: str, limit: int) -> list[str]:
    """A form's list: names separated by commas or spaces."""
    found = [w for w in re.split(r"[\s,]+", value or "") if w]
    if len(found) > limit:
        raise InvalidRequest(f"{what}: at most {limit}")
    return found


def _deliverer(runtime: Runtime) -> Deliverer:
    if runtime.deliverer is None:
        raise RuntimeError("the app's lifespan starts the deliverer")
    return runtime.deliverer


def _url(realm_id: str, webhook_id: str | None = None) -> str:
    base = f"/console/realms/{realm_id}/webhooks"
    return base if webhook_id is None else f"{base}/{webhook_id}"


async def _operator(request: Request[Any, Any, State], realm_id: str) -> Session:
    params.realm_id(realm_id)
    session = await signed_in(request, realm_id)
    require(session.caller, Access.WRITE)
    return session


async def _posted(request: Request[Any, Any, State], realm_id: str) -> tuple[Session, Any]:
    params.realm_id(realm_id)
    session = await signed_in(request, realm_id)
    form = await request.form()
    check_form(request, session, form.get("csrf"))
    require(session.caller, Access.WRITE)
    return session, form


async def _listing(
    runtime: Runtime, session: Session, realm_id: str, status: int = 200, **extra: Any
) -> Template:
    async with runtime.db.transaction(realm_id) as conn:
        realm = await realms.get(conn, realm_id)
        hooks = await webhooks.page(conn, realm_id, PAGE_LIMIT, None)
    return page(
        "webhooks.html",
        session,
        status,
        realm=realm,
        hooks=hooks,
        title="Webhooks",
        nav_realm=realm_id,
        **({"created": None, "done": None} | extra),
    )


class WebhookPageController(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = EXCEPTION_HANDLERS

    @get(_REALM, opt=PUBLIC)
    async def listing(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        done: FromQuery[str | None] = None,
    ) -> Template:
        session = await _operator(request, realm_id)
        return await _listing(runtime_of(request), session, realm_id, done=done)

    @post(_REALM, opt=PUBLIC, status_code=201)
    async def add(self, request: Request[Any, Any, State], realm_id: FromPath[str]) -> Template:
        session, form = await _posted(request, realm_id)
        url = str(form.get("url") or "").strip()
        if not url or len(url) > _URL_MAX:
            raise InvalidRequest(f"url must be 1 to {_URL_MAX} characters")
        events = words(form.get("events"), "events", _LIST_MAX) or ["*"]
        agents = words(form.get("agents"), "agents", 1000) or None
        for agent in agents or []:
            if _AGENT.fullmatch(agent) is None:
                raise InvalidRequest("agent ids match [A-Za-z0-9._:@-]{1,128}")
        runtime = runtime_of(request)
        allow = runtime.settings.webhook_allow_private
        async with runtime.write(realm_id) as conn:
            hook: Webhook = await webhook_service.create(
                conn, realm_id, url, events, agents, session.caller.key_id, allow
            )
        _deliverer(runtime).wake()
        # The secret is on this answer only: the list never shows it again.
        return await _listing(runtime, session, realm_id, 201, created=hook)

    @post(_REALM + "/{webhook_id:str}/delete", opt=PUBLIC, status_code=303)
    async def remove(
        self, request: Request[Any, Any, State], realm_id: FromPath[str], webhook_id: FromPath[str]
    ) -> Redirect:
        await _posted(request, realm_id)
        wid = _webhook_id(webhook_id)
        async with runtime_of(request).write(realm_id) as conn:
            await webhook_service.remove(conn, realm_id, wid)
        return Redirect(f"{_url(realm_id)}?done=deleted", status_code=303)

    @get(_REALM + "/{webhook_id:str}", opt=PUBLIC)
    async def deliveries(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        webhook_id: FromPath[str],
        done: FromQuery[str | None] = None,
    ) -> Template:
        session = await _operator(request, realm_id)
        wid = _webhook_id(webhook_id)
        async with runtime_of(request).db.transaction(realm_id) as conn:
            hook = await webhooks.get(conn, realm_id, wid)
            log = await webhooks.deliveries(conn, realm_id, wid, PAGE_LIMIT, None)
        return page(
            "webhook.html",
            session,
            realm_id=realm_id,
            hook=hook,
            deliveries=log,
            done=done,
            title="Webhook deliveries",
            nav_realm=realm_id,
        )

    @post(
        _REALM + "/{webhook_id:str}/deliveries/{delivery_id:str}/retry", opt=PUBLIC, status_code=303
    )
    async def retry(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        webhook_id: FromPath[str],
        delivery_id: FromPath[str],
    ) -> Redirect:
        await _posted(request, realm_id)
        wid = _webhook_id(webhook_id)
        if _DELIVERY_ID.fullmatch(delivery_id) is None:
            raise NotFound(f"delivery {delivery_id!r} not found")
        runtime = runtime_of(request)
        async with runtime.write(realm_id) as conn:
            await _deliverer(runtime).retry(conn, realm_id, wid, delivery_id)
        return Redirect(f"{_url(realm_id, wid)}?done=retried", status_code=303)
