"""The realm's event feed: the outbox, read by cursor (the realm revision)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from charter.api import params, render, wire
from charter.api.auth import ACCESS
from charter.api.deps import RuntimeDep
from charter.api.openapi import FeedEvent, event_stream
from charter.domain.access import Access
from charter.domain.events import EventType
from charter.runtime import Runtime
from charter.store import events, realms

EVENT_TYPES = frozenset(
    t.value for t in EventType
)  # `?type=` knows exactly the types the producers write

MAX_SEQ = 2**63 - 1  # seq is a BIGINT: a larger cursor is bad input, not a driver overflow


class EventController(Controller):
    path = "/v1/realms/{realm_id:str}/events"
    tags = ["events"]  # noqa: RUF012

    @get(
        "/",
        summary="The realm's events after a cursor",
        operation_id="listEvents",
        description="The realm's events after the cursor `after` (an event seq), oldest first.",
        opt={ACCESS: Access.READ},
    )
    async def feed(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        after: Annotated[str | None, params.number_query(0, MAX_SEQ)] = None,
        limit: params.Limit = None,
        event_type: Annotated[list[str] | None, QueryParameter(name="type")] = None,
        directive_id: params.DirectiveQuery = None,
    ) -> wire.EventPage:
        params.realm_id(realm_id)
        types = event_type or []
        unknown = sorted(set(types) - EVENT_TYPES)
        if unknown:
            raise params.InvalidRequest(f"unknown event type; known: {sorted(EVENT_TYPES)}")
        if directive_id is not None:
            params.directive_id(directive_id)
        size = params.limit(limit)
        cursor = 0 if after is None else params.number(after, "after", 0, MAX_SEQ)
        async with runtime.db.transaction(realm_id) as conn:
            await realms.get(conn, realm_id)
            page = await events.feed(conn, realm_id, cursor, size, types, directive_id)
        next_cursor = page[-1].seq if page else None
        return wire.EventPage([render.event(e) for e in page], next_cursor)

    @get(
        "/stream",
        summary="The event feed as server-sent events, resumable",
        operation_id="streamEvents",
        description=(
            "The realm's events as server-sent events, as they happen: after Last-Event-ID if "
            "given, else after `after`, else from now."
        ),
        responses={
            200: event_stream(FeedEvent, "the realm's events after the cursor, as they come")
        },
        opt={ACCESS: Access.READ},
    )
    async def stream(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        after: Annotated[str | None, params.number_query(0, MAX_SEQ)] = None,
        last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
    ) -> ServerSentEvent:
        """Starts after `Last-Event-ID`, else after `after`, else at the current revision."""
        params.realm_id(realm_id)
        async with runtime.db.transaction(realm_id) as conn:
            realm = await realms.get(conn, realm_id)
        cursor = realm.revision if after is None else params.number(after, "after", 0, MAX_SEQ)
        if last_event_id is not None:
            seq = last_event_id.strip()
            if not (seq.isascii() and seq.isdigit()) or len(seq) > 18:
                raise params.InvalidRequest("Last-Event-ID must be an event seq")
            cursor = int(seq)
        return ServerSentEvent(_follow(runtime, realm_id, cursor))


_encoder = msgspec.json.Encoder()


async def _follow(
    runtime: Runtime, realm_id: str, cursor: int
) -> AsyncIterator[ServerSentEventMessage]:
    with runtime.hub.watch_realm(realm_id) as watch:  # before reading: no change slips by
        while True:
            async with runtime.db.transaction(realm_id) as conn:
                page = await events.feed(conn, realm_id, cursor, _STREAM_PAGE)
            for event in page:
                data = _encoder.encode(render.event(event)).decode()
                yield ServerSentEventMessage(data=data, event=event.type, id=str(event.seq))
                cursor = event.seq
            if len(page) == _STREAM_PAGE:
                continue
            if not await watch.wait(runtime.settings.heartbeat_seconds):
                yield ServerSentEventMessage(data=None, comment="ping")


_STREAM_PAGE = 500
