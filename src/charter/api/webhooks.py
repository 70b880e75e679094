"""Webhooks (operator and admin keys): create (the secret is shown once), list, show, delete,
enable again; each one's delivery log, and a manual retry of one delivery."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromQuery, JSONBody
from msgspec import Meta, Struct
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api import params
from charter.api.auth import ACCESS
from charter.api.deps import CallerDep, RuntimeDep
from charter.api.idempotent import write_once
from charter.api.wire import AgentId, _In
from charter.domain.access import Access
from charter.errors import NotFound
from charter.ids import SUFFIX
from charter.runtime import Runtime
from charter.services import webhooks as webhook_service
from charter.services.deliveries import Deliverer
from charter.store import realms, webhooks
from charter.store.webhooks import Delivery, Webhook

EventName = Annotated[str, Meta(min_length=1, max_length=40)]
Url = Annotated[str, Meta(min_length=1, max_length=2048)]
_WEBHOOK_ID = re.compile(f"whk_{SUFFIX}")
_DELIVERY_ID = re.compile(f"dlv_{SUFFIX}")


class WebhookCreate(_In):
    url: Url
    events: Annotated[list[EventName], Meta(min_length=1, max_length=64)]
    agents: Annotated[list[AgentId], Meta(min_length=1, max_length=1000)] | None = None


class WebhookOut(Struct, kw_only=True):
    id: str
    realm_id: str
    url: str
    events: list[str]
    agents: list[str] | None
    state: str
    delivered_seq: int
    failures: int
    failing_since: datetime | None
    next_attempt_at: datetime
    disabled_at: datetime | None
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookOut, kw_only=True):
    # The signing secret (`whsec_…`): in the first response only. A replay (same
    # Idempotency-Key) answers null: delete the webhook and make another.
    secret: str | None


class WebhookPage(Struct):
    items: list[WebhookOut]
    next_cursor: str | None


class DeliveryOut(Struct, kw_only=True):
    id: str
    webhook_id: str
    seq: int
    message_id: str
    event_type: str
    attempt: int
    manual: bool
    status_code: int | None
    error: str | None
    latency_ms: float
    attempted_at: datetime


class DeliveryPage(Struct):
    items: list[DeliveryOut]
    next_cursor: str | None


def _out(hook: Webhook) -> WebhookOut:
    return msgspec.convert(hook, WebhookOut, from_attributes=True)


def _delivery(attempt: Delivery) -> DeliveryOut:
    return msgspec.convert(attempt, DeliveryOut, from_attributes=True)


def _webhook_id(value: str) -> str:
    if _WEBHOOK_ID.fullmatch(value) is None:
        raise NotFound(f"webhook {value!r} not found")
    return value


def _base(realm_id: str) -> str:
    return f"/v1/realms/{realm_id}/webhooks"


class WebhookController(Controller):
    path = "/v1/realms/{realm_id:str}/webhooks"
    tags = ["webhooks"]  # noqa: RUF012

    @post(
        "/",
        status_code=201,
        summary="Create a webhook",
        operation_id="createWebhook",
        description=(
            'Subscribes a URL to the realm\'s events (`events`: types, or `["*"]`; `agents`: '
            "only events affecting one of them). Deliveries are signed as Standard Webhooks "
            "specifies, with the secret in this response only."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def create(
        self,
        runtime: RuntimeDep,
        caller: CallerDep,
        realm_id: params.RealmPath,
        data: JSONBody[WebhookCreate],
        request: Request[Any, Any, Any],
    ) -> Response[WebhookCreated]:
        data = params.strict_body(await request.json(), WebhookCreate)
        params.realm_id(realm_id)
        allow = runtime.settings.webhook_allow_private

        async def run(conn: AsyncConnection) -> Response[WebhookCreated]:
            hook = await webhook_service.create(
                conn, realm_id, data.url, data.events, data.agents, caller.key_id, allow
            )
            out = _out(hook)
            fields = {name: getattr(out, name) for name in WebhookOut.__struct_fields__}
            body = WebhookCreated(**fields, secret=hook.secret)
            location = f"{_base(realm_id)}/{hook.id}"
            return Response(body, status_code=201, headers={"Location": location})

        def without_secret(created: WebhookCreated) -> WebhookCreated:
            return msgspec.structs.replace(created, secret=None)

        response = await write_once(runtime, request, realm_id, run, kept=without_secret)
        _deliverer(runtime).wake()
        return response

    @get(
        "/",
        summary="List webhooks (never their secrets)",
        operation_id="listWebhooks",
        description="The realm's webhooks with their delivery state, never their secrets.",
        opt={ACCESS: Access.WRITE},
    )
    async def list_webhooks(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        limit: params.Limit = None,
        cursor: FromQuery[str | None] = None,
    ) -> WebhookPage:
        params.realm_id(realm_id)
        size = params.limit(limit)
        async with runtime.db.transaction(realm_id) as conn:
            await realms.get(conn, realm_id)
            page = await webhooks.page(conn, realm_id, size + 1, params.decode_cursor(cursor))
        items = page[:size]
        next_cursor = params.encode_cursor(items[-1].id) if len(page) > size else None
        return WebhookPage([_out(h) for h in items], next_cursor)

    @get(
        "/{webhook_id:str}",
        summary="Show a webhook",
        operation_id="getWebhook",
        description="One webhook and its delivery state: cursor, failures, next attempt.",
        opt={ACCESS: Access.WRITE},
    )
    async def show(
        self, runtime: RuntimeDep, realm_id: params.RealmPath, webhook_id: params.WebhookPath
    ) -> WebhookOut:
        params.realm_id(realm_id)
        async with runtime.db.transaction(realm_id) as conn:
            return _out(await webhooks.get(conn, realm_id, _webhook_id(webhook_id)))

    @delete(
        "/{webhook_id:str}",
        status_code=204,
        summary="Delete a webhook",
        operation_id="deleteWebhook",
        description="Deletes the webhook and its delivery log; nothing more is sent to it.",
        opt={ACCESS: Access.WRITE},
    )
    async def remove(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        webhook_id: params.WebhookPath,
        request: Request[Any, Any, Any],
    ) -> Response[None]:
        params.realm_id(realm_id)
        wid = _webhook_id(webhook_id)

        async def run(conn: AsyncConnection) -> Response[None]:
            await webhook_service.remove(conn, realm_id, wid)
            return Response(None, status_code=204)

        return await write_once(runtime, request, realm_id, run)

    @post(
        "/{webhook_id:str}/enable",
        status_code=200,
        summary="Enable a disabled webhook",
        operation_id="enableWebhook",
        description=(
            "Delivers again, at once, from where the webhook's cursor stands (after "
            "`webhook.disabled`, nothing it wanted was skipped)."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def enable(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        webhook_id: params.WebhookPath,
        request: Request[Any, Any, Any],
    ) -> Response[WebhookOut]:
        params.realm_id(realm_id)
        wid = _webhook_id(webhook_id)

        async def run(conn: AsyncConnection) -> Response[WebhookOut]:
            return Response(_out(await webhook_service.enable(conn, realm_id, wid)))

        response = await write_once(runtime, request, realm_id, run)
        _deliverer(runtime).wake()
        return response

    @get(
        "/{webhook_id:str}/deliveries",
        summary="A webhook's delivery attempts",
        operation_id="listWebhookDeliveries",
        description=(
            "Every delivery attempt, newest first: the event, the attempt number, the status "
            "code (or the error), the latency."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def deliveries(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        webhook_id: params.WebhookPath,
        limit: params.Limit = None,
        cursor: FromQuery[str | None] = None,
    ) -> DeliveryPage:
        params.realm_id(realm_id)
        wid = _webhook_id(webhook_id)
        size = params.limit(limit)
        before = params.decode_cursor(cursor)
        async with runtime.db.transaction(realm_id) as conn:
            await webhooks.get(conn, realm_id, wid)
            page = await webhooks.deliveries(conn, realm_id, wid, size + 1, before)
        items = page[:size]
        next_cursor = params.encode_cursor(items[-1].id) if len(page) > size else None
        return DeliveryPage([_delivery(a) for a in items], next_cursor)

    @post(
        "/{webhook_id:str}/deliveries/{delivery_id:str}/retry",
        status_code=201,
        summary="Retry one delivery",
        operation_id="retryWebhookDelivery",
        description=(
            "Sends that delivery's event again, now, with the same `webhook-id`, and answers "
            "the new attempt. The webhook's cursor does not move."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def retry(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        webhook_id: params.WebhookPath,
        delivery_id: params.DeliveryPath,
        request: Request[Any, Any, Any],
    ) -> Response[DeliveryOut]:
        params.realm_id(realm_id)
        wid = _webhook_id(webhook_id)
        if _DELIVERY_ID.fullmatch(delivery_id) is None:
            raise NotFound(f"delivery {delivery_id!r} not found")
        deliverer = _deliverer(runtime)

        async def run(conn: AsyncConnection) -> Response[DeliveryOut]:
            attempt = await deliverer.retry(conn, realm_id, wid, delivery_id)
            return Response(_delivery(attempt), status_code=201)

        return await write_once(runtime, request, realm_id, run)


def _deliverer(runtime: Runtime) -> Deliverer:
    if runtime.deliverer is None:
        raise RuntimeError("the app's lifespan starts the deliverer")
    return runtime.deliverer
