"""The realm's event feed: the outbox, read by cursor (the realm revision)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api import params, render, sse, wire
from charter.api.auth import ACCESS, HELD
from charter.api.deps import HoldDep, RuntimeDep
from charter.api.openapi import FeedEvent, event_stream
from charter.cache.watch import Watch
from charter.domain.access import Access
from charter.domain.events import EventType
from charter.runtime import Runtime
from charter.services import feeds
from charter.store import events, realms
from charter.store.events import Event

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
        types = _types(event_type)
        directive_id = _directive(directive_id)
        size = params.limit(limit)
        cursor = 0 if after is None else params.number(after, "after", 0, MAX_SEQ)

        async def read(conn: AsyncConnection) -> list[Event]:
            await realms.get(conn, realm_id)
            return await events.feed(conn, realm_id, cursor, size, types, directive_id)

        # The outbox is append-only, each event at the revision it raised: a replica that has
        # replayed the primary's current revision has every event up to it (ADR 0013).
        page = await runtime.db.replayed(realm_id, read)
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
        opt={ACCESS: Access.READ, HELD: True},
    )
    async def stream(
        self,
        runtime: RuntimeDep,
        hold: HoldDep,
        realm_id: params.RealmPath,
        after: Annotated[str | None, params.number_query(0, MAX_SEQ)] = None,
        last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
        event_type: Annotated[list[str] | None, QueryParameter(name="type")] = None,
        directive_id: params.DirectiveQuery = None,
    ) -> Stream:
        """Starts after `Last-Event-ID`, else after `after`, else at the current revision;
        `type` and `directive_id` filter as on the feed."""
        params.realm_id(realm_id)
        only = feeds.Filter(frozenset(_types(event_type)), _directive(directive_id))
        async with runtime.db.transaction(realm_id) as conn:
            realm = await realms.get(conn, realm_id)
        cursor = realm.revision if after is None else params.number(after, "after", 0, MAX_SEQ)
        if last_event_id is not None:
            seq = last_event_id.strip()
            if not (seq.isascii() and seq.isdigit()) or len(seq) > 18:
                raise params.InvalidRequest("Last-Event-ID must be an event seq")
            cursor = int(seq)
        frames = runtime.feeds.follow(
            realm_id,
            realm.revision if cursor is None else cursor,
            realm.revision,
            only,
            hold,
            _frame,
            runtime.settings.heartbeat_seconds,
        )
        return sse.response(_stream(frames, hold, runtime))


def _types(given: list[str] | None) -> list[str]:
    types = given or []
    if set(types) - EVENT_TYPES:
        raise params.InvalidRequest(f"unknown event type; known: {sorted(EVENT_TYPES)}")
    return types


def _directive(given: str | None) -> str | None:
    if given is not None:
        params.directive_id(given)
    return given


_encoder = msgspec.json.Encoder()


def event_json(event: Event) -> bytes:
    """An event as the feed shows it: the items of `listEvents`, the data of `streamEvents`,
    and the body of a webhook delivery."""
    return _encoder.encode(render.event(event))


def _frame(event: Event) -> bytes:
    return sse.frame(event.type, str(event.seq), event_json(event))


async def _stream(
    frames: AsyncGenerator[bytes | None, None], hold: Watch, runtime: Runtime
) -> AsyncIterator[bytes]:
    with runtime.hub.counted("event_stream"):
        async with aclosing(frames):
            async for frame in frames:
                yield sse.PING if frame is None else frame
    if hold.ended is not None:
        yield sse.ending(hold.ended)
