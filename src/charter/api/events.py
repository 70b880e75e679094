"""The realm's event feed: the outbox, read by cursor (the realm revision)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, FromQuery, QueryParameter

from charter.api import params, render, wire
from charter.api.deps import RuntimeDep
from charter.store import events, realms

EVENT_TYPES = frozenset(
    {
        "directive.created",
        "directive.version_created",
        "directive.updated",
        "directive.moved",
        "directive.status_changed",
        "directive.rolled_back",
        "directive.deactivated",
    }
)


class EventController(Controller):
    path = "/v1/realms/{realm_id:str}/events"
    tags = ["events"]  # noqa: RUF012

    @get("/", summary="The realm's events after a cursor")
    async def feed(
        self,
        runtime: RuntimeDep,
        realm_id: FromPath[str],
        after: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: FromQuery[int | None] = None,
        event_type: Annotated[list[str] | None, QueryParameter(name="type")] = None,
        directive_id: FromQuery[str | None] = None,
    ) -> wire.EventPage:
        params.realm_id(realm_id)
        types = event_type or []
        unknown = sorted(set(types) - EVENT_TYPES)
        if unknown:
            raise params.InvalidRequest(f"unknown event type; known: {sorted(EVENT_TYPES)}")
        if directive_id is not None:
            params.directive_id(directive_id)
        size = params.limit(limit)
        async with runtime.db.transaction(realm_id) as conn:
            await realms.get(conn, realm_id)
            page = await events.feed(conn, realm_id, after, size, types, directive_id)
        next_cursor = page[-1].seq if page else None
        return wire.EventPage([render.event(e) for e in page], next_cursor)
