"""Agent-facing routes: the composed prompt (conditional, long-poll, SSE), compositions,
agents (inject is api/inject.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from collections.abc import Set as AbstractSet
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.params import FromQuery, HeaderParameter
from litestar.response import Stream

from charter.api import params, sse, wire
from charter.api.auth import ACCESS, HELD, refuse_ended, session_of
from charter.api.claims import claim_out
from charter.api.deps import CallerDep, HoldDep, RuntimeDep, caller_of
from charter.api.openapi import PromptEvent, event_stream
from charter.cache.entries import Entry
from charter.domain.access import Access, Role
from charter.errors import InvalidRequest, NotFound
from charter.runtime import Runtime
from charter.services import prompts
from charter.store import claims, compositions, realms

_AGENT_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_COMPOSITION_ID = re.compile(r"cmp_[0-9a-f]{64}")
_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"|\*')
MAX_WAIT_SECONDS = 60

IfNoneMatch = Annotated[str | None, HeaderParameter(name="If-None-Match", required=False)]


def check_agent(realm_id: str, agent_id: str) -> None:
    params.realm_id(realm_id)
    if _AGENT_ID.fullmatch(agent_id) is None:
        raise InvalidRequest("agent ids match [A-Za-z0-9._:@-]{1,128}")


def agent_ids_valid(realm_id: str, agent_id: str) -> bool:
    return params.is_realm_id(realm_id) and _AGENT_ID.fullmatch(agent_id) is not None


def entity_tags(if_none_match: str | None) -> set[str]:
    if not if_none_match:
        return set()
    return {m.group(1) or "*" for m in _ENTITY_TAG.finditer(if_none_match)}


def matches(entry: Entry, tags: AbstractSet[str]) -> bool:
    return "*" in tags or entry.composition_id in tags


def _prompt(entry: Entry) -> Response[bytes]:
    return Response(
        entry.payload, media_type="application/json", headers={"ETag": f'"{entry.composition_id}"'}
    )


def _not_modified(entry: Entry) -> Response[bytes]:
    return Response(b"", status_code=304, headers={"ETag": f'"{entry.composition_id}"'})


async def changed(
    runtime: Runtime,
    key_id: str,
    realm_id: str,
    agent_id: str,
    tags: AbstractSet[str],
    seconds: float,
    session: str | None = None,
) -> Entry:
    """The long poll: the agent's entry once it no longer matches `tags`, or after `seconds`
    (or once the process is stopping) the current one, which still does.

    Held under `key_id` (and the console `session` whose cookie opened it): RateLimited past
    the key's cap, Unauthenticated once the key is revoked or the session ends.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    # Watch first, then read: a change landing in between still rings the bell.
    with (
        runtime.hub.holds.hold(key_id, session) as watch,
        runtime.hub.watch_agent(realm_id, agent_id, watch),
    ):
        while True:
            entry = await runtime.prompts.current(realm_id, agent_id)
            refuse_ended(watch)
            if not matches(entry, tags) or watch.ended is not None:
                return entry
            remaining = deadline - loop.time()
            if remaining <= 0 or not await watch.wait(remaining):
                return entry


async def _wait_for_change(
    runtime: Runtime,
    key_id: str,
    realm_id: str,
    agent_id: str,
    tags: AbstractSet[str],
    seconds: float,
    session: str | None,
) -> Response[bytes]:
    entry = await changed(runtime, key_id, realm_id, agent_id, tags, seconds, session)
    return _not_modified(entry) if matches(entry, tags) else _prompt(entry)


class AgentController(Controller):
    path = "/v1/realms/{realm_id:str}"
    tags = ["agents"]  # noqa: RUF012

    @get(
        "/agents",
        summary="Agents that own directives, with counts",
        operation_id="listAgents",
        description=(
            "The agents that own directives in the realm, with how many they own and how many are "
            "active."
        ),
        opt={ACCESS: Access.READ},
    )
    async def list_agents(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        limit: params.Limit = None,
        cursor: FromQuery[str | None] = None,
    ) -> wire.AgentPage:
        params.realm_id(realm_id)
        size = params.limit(limit)
        async with runtime.db.transaction(realm_id) as conn:
            await realms.get(conn, realm_id)
            rows = await compositions.agents(conn, realm_id, size + 1, params.decode_cursor(cursor))
            held = await claims.live_by_agent(conn, realm_id, [row[0] for row in rows[:size]])
        items = [
            wire.AgentOut(
                agent_id=a,
                directives=n,
                active=k,
                claims=[claim_out(c) for c in held.get(a, [])],
            )
            for a, n, k in rows[:size]
        ]
        next_cursor = params.encode_cursor(items[-1].agent_id) if len(rows) > size else None
        return wire.AgentPage(items, next_cursor)

    @get(
        "/agents/{agent_id:str}/prompt",
        summary="The agent's composed prompt; If-None-Match → 304; ?wait=N long-polls",
        operation_id="getPrompt",
        description=(
            "The agent's composed prompt. With If-None-Match naming the current composition it "
            "answers 304; with ?wait=N as well it long-polls up to N seconds for a change."
        ),
        responses={
            200: ResponseSpec(
                prompts.PromptDocument, description="the composition", generate_examples=False
            ),
            304: ResponseSpec(None, description="If-None-Match names the current composition"),
        },
        opt={ACCESS: Access.PROMPT},
    )
    async def prompt(
        self,
        request: Request[Any, Any, Any],
        realm_id: params.RealmPath,
        agent_id: params.AgentPath,
        if_none_match: IfNoneMatch = None,
        wait: Annotated[str | None, params.number_query(0, MAX_WAIT_SECONDS)] = None,
    ) -> Response[bytes]:
        # The hot path: the runtime straight from the app, not through dependency injection.
        runtime: Runtime = request.app.state.runtime
        check_agent(realm_id, agent_id)
        seconds = 0 if wait is None else params.number(wait, "wait", 0, MAX_WAIT_SECONDS)
        tags = entity_tags(if_none_match)
        if seconds and tags:
            key_id, session = caller_of(request).key_id, session_of(request.state)
            return await _wait_for_change(
                runtime, key_id, realm_id, agent_id, tags, seconds, session
            )
        entry = await runtime.prompts.current(realm_id, agent_id)
        return _not_modified(entry) if matches(entry, tags) else _prompt(entry)

    @get(
        "/agents/{agent_id:str}/prompt/stream",
        summary="Server-sent events: the prompt on change",
        operation_id="streamPrompt",
        description=(
            "Server-sent events: the agent's prompt on connect, then again on every change; a "
            "comment every heartbeat keeps the connection open."
        ),
        responses={200: event_stream(PromptEvent, "the composition, on connect and on change")},
        opt={ACCESS: Access.PROMPT, HELD: True},
    )
    async def stream(
        self,
        runtime: RuntimeDep,
        hold: HoldDep,
        realm_id: params.RealmPath,
        agent_id: params.AgentPath,
    ) -> Stream:
        check_agent(realm_id, agent_id)
        await runtime.prompts.current(realm_id, agent_id)  # 404 now, not mid-stream

        async def changes() -> AsyncIterator[bytes]:
            sent: str | None = None
            with runtime.hub.watch_agent(realm_id, agent_id, hold, kind="prompt_stream"):
                while hold.ended is None:
                    try:
                        entry = await runtime.prompts.current(realm_id, agent_id)
                    except NotFound:
                        return  # the agent no longer owns anything here
                    if hold.ended is not None:
                        break  # never a prompt read after the key's revocation
                    if entry.composition_id != sent:
                        sent = entry.composition_id
                        yield sse.frame("prompt", sent, entry.payload)
                    # Read again only when rung: a heartbeat is no reason to, and thousands of
                    # streams reading on theirs would query while a change's new entries are
                    # still being made (services/refresh.py).
                    while not await hold.wait(runtime.settings.heartbeat_seconds):
                        yield sse.PING
            if hold.ended is not None:
                yield sse.ending(hold.ended)

        return sse.response(changes())

    @get(
        "/compositions/{composition_id:str}",
        summary="A past or present composition, exactly",
        operation_id="getComposition",
        description="A composition by id, as it was composed: text, directives and their versions.",
        opt={ACCESS: Access.ANY},
    )
    async def composition(
        self,
        runtime: RuntimeDep,
        caller: CallerDep,
        realm_id: params.RealmPath,
        composition_id: params.CompositionPath,
    ) -> prompts.CompositionDocument:
        params.realm_id(realm_id)
        if _COMPOSITION_ID.fullmatch(composition_id) is None:
            raise InvalidRequest("composition ids look like cmp_ followed by 64 hex digits")
        # An agent key resolves only compositions that are or were its own prompt; any other
        # is a 404, like an id never recorded, so it cannot learn that another exists.
        agent = (caller.agent_id or "") if caller.role is Role.AGENT else None
        return await runtime.prompts.resolve(realm_id, composition_id, agent)
