"""Claim routes: take a directive's work, keep the lease alive, finish it; list and wait."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api import params, wire
from charter.api.auth import ACCESS, refuse_ended, session_of
from charter.api.deps import ActorDep, CallerDep, RuntimeDep
from charter.api.idempotent import write_once
from charter.clock import utcnow
from charter.domain.access import Access, Caller, Role
from charter.domain.work import ClaimState
from charter.errors import Forbidden, InvalidRequest, NotFound
from charter.ids import SUFFIX
from charter.runtime import Runtime
from charter.services import claims as work
from charter.services.claims import ClaimRequest, Finish
from charter.store import claims, realms
from charter.store.claims import Claim

MAX_WAIT_SECONDS = 60
_CLAIM_ID = re.compile(f"clm_{SUFFIX}")
ClaimPath = Annotated[
    str, PathParameter(description="a claim id", schema_extra={"pattern": f"^clm_{SUFFIX}$"})
]
_AGENT = Annotated[str | None, QueryParameter(pattern=wire.AGENT_ID_PATTERN)]


def claim_out(c: Claim) -> wire.ClaimOut:
    return wire.ClaimOut(
        id=c.id,
        directive_id=c.directive_id,
        agent_id=c.agent_id,
        attempt=c.attempt,
        state=ClaimState(c.state),
        lease_seconds=c.lease_seconds,
        created_at=c.created_at,
        expires_at=c.expires_at,
        finished_at=c.finished_at,
        error_code=c.error_code,
        result=c.result,
    )


def _acting_for(caller: Caller, agent_id: str) -> None:
    if not caller.acts_for(agent_id):
        raise Forbidden("an agent key works only as its own agent")


def _ids(realm_id: str, directive_id: str, claim_id: str | None = None) -> None:
    params.realm_id(realm_id)
    params.directive_id(directive_id)
    if claim_id is not None and _CLAIM_ID.fullmatch(claim_id) is None:
        raise InvalidRequest("claim ids look like clm_ followed by 26 characters")


async def _holder(runtime: Runtime, realm_id: str, directive_id: str, claim_id: str) -> str:
    async with runtime.db.transaction(realm_id) as conn:
        await realms.get(conn, realm_id)
        found = await claims.get(conn, realm_id, claim_id)
    if found.directive_id != directive_id:
        raise NotFound(f"claim {claim_id!r} not found")
    return found.agent_id


class ClaimController(Controller):
    path = "/v1/realms/{realm_id:str}"
    tags = ["claims"]  # noqa: RUF012

    @post(
        "/directives/{directive_id:str}/claims",
        status_code=201,
        summary="Claim a directive's work, with a lease",
        operation_id="claimDirective",
        description=(
            "Takes the directive's one live claim for an agent until the lease runs out. 409 "
            "already-claimed while another is live; not-due when paused, deactivated or before "
            "not_before; invalid-transition when terminal, unless rerun reopens it."
        ),
        opt={ACCESS: Access.WORK},
    )
    async def claim(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        caller: CallerDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        data: JSONBody[wire.ClaimIn],
        request: Request[Any, Any, Any],
    ) -> Response[wire.ClaimOut]:
        data = params.strict_body(await request.json(), wire.ClaimIn)
        _ids(realm_id, directive_id)
        _acting_for(caller, data.agent_id)
        own = caller.role is Role.AGENT
        asked = ClaimRequest(data.agent_id, data.lease_seconds, data.rerun, owned_only=own)
        depth = runtime.settings.max_depth

        async def run(conn: AsyncConnection) -> Response[wire.ClaimOut]:
            made = await work.claim(conn, realm_id, actor, directive_id, asked, depth)
            location = f"/v1/realms/{realm_id}/directives/{directive_id}/claims/{made.id}"
            return Response(claim_out(made), status_code=201, headers={"Location": location})

        return await write_once(runtime, request, realm_id, run)

    @post(
        "/directives/{directive_id:str}/claims/{claim_id:str}/heartbeat",
        status_code=200,
        summary="Extend a live claim's lease",
        operation_id="heartbeatClaim",
        description="Extends the lease from now (by lease_seconds, or the claim's own lease).",
        opt={ACCESS: Access.WORK},
    )
    async def heartbeat(
        self,
        runtime: RuntimeDep,
        caller: CallerDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        claim_id: ClaimPath,
        request: Request[Any, Any, Any],
    ) -> Response[wire.ClaimOut]:
        _ids(realm_id, directive_id, claim_id)
        data = params.decode_body(await request.body(), wire.HeartbeatIn)
        _acting_for(caller, await _holder(runtime, realm_id, directive_id, claim_id))

        async def run(conn: AsyncConnection) -> Response[wire.ClaimOut]:
            held = await work.heartbeat(conn, realm_id, directive_id, claim_id, data.lease_seconds)
            return Response(claim_out(held))

        return await write_once(runtime, request, realm_id, run)

    @post(
        "/directives/{directive_id:str}/claims/{claim_id:str}/finish",
        status_code=200,
        summary="Finish a claim: succeeded or failed",
        operation_id="finishClaim",
        description=(
            "succeeded completes the directive (cascade allowed); failed keeps it and records "
            "last_failure. The same finish again answers changed: false, reused: true."
        ),
        opt={ACCESS: Access.WORK},
    )
    async def finish(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        caller: CallerDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        claim_id: ClaimPath,
        data: JSONBody[wire.FinishIn],
        request: Request[Any, Any, Any],
    ) -> Response[wire.FinishOut]:
        data = params.strict_body(await request.json(), wire.FinishIn)
        _ids(realm_id, directive_id, claim_id)
        _acting_for(caller, await _holder(runtime, realm_id, directive_id, claim_id))
        done = Finish(data.outcome, data.result, data.error_code, data.cascade)
        depth = runtime.settings.max_depth

        async def run(conn: AsyncConnection) -> Response[wire.FinishOut]:
            ended = await work.finish(conn, realm_id, actor, directive_id, claim_id, done, depth)
            node = ended.directive
            body = wire.FinishOut(
                claim=claim_out(ended.claim),
                directive_id=node.id,
                status=node.status,
                revision=node.revision,
                changed=ended.changed,
                reused=ended.reused,
            )
            return Response(body)

        return await write_once(runtime, request, realm_id, run)

    @get(
        "/claims",
        summary="List claims; with agent_id, what it may claim; ?wait=N long-polls for work",
        operation_id="listClaims",
        description=(
            "Claims, filtered by agent_id and state, a page at a time. With agent_id the answer "
            "also names the directives that agent may claim now; with wait=N as well, it waits "
            "up to N seconds for one when there is none."
        ),
        opt={ACCESS: Access.ANY},
    )
    async def list_claims(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        caller: CallerDep,
        realm_id: params.RealmPath,
        agent_id: _AGENT = None,
        claim_state: Annotated[ClaimState | None, QueryParameter(name="state")] = None,
        wait: Annotated[str | None, params.number_query(0, MAX_WAIT_SECONDS)] = None,
        limit: params.Limit = None,
        cursor: FromQuery[str | None] = None,
    ) -> wire.ClaimPage:
        params.realm_id(realm_id)
        if caller.agent_id is not None and agent_id is None:
            agent_id = caller.agent_id
        if agent_id is not None:
            _acting_for(caller, agent_id)
        elif not caller.acts_for(""):
            raise Forbidden("an agent key lists only its own claims")
        seconds = 0 if wait is None else params.number(wait, "wait", 0, MAX_WAIT_SECONDS)
        if seconds and agent_id is None:
            raise InvalidRequest("wait needs agent_id: it waits for that agent's work")
        size = params.limit(limit)
        after = params.decode_cursor(cursor)
        chosen = None if claim_state is None else claim_state.value
        claimable = None
        if agent_id is not None and seconds:
            session = session_of(request.state)
            claimable = await _wait_for_work(
                runtime, caller.key_id, session, realm_id, agent_id, seconds
            )
        async with runtime.db.transaction(realm_id) as conn:
            await realms.get(conn, realm_id)
            page = await claims.page(conn, realm_id, size + 1, after, agent_id, chosen)
            if agent_id is not None and claimable is None:
                claimable = await claims.claimable(conn, realm_id, agent_id, utcnow(), size)
        items = page[:size]
        next_cursor = params.encode_cursor(items[-1].id) if len(page) > size else None
        return wire.ClaimPage(
            items=[claim_out(c) for c in items], next_cursor=next_cursor, claimable=claimable
        )


async def _wait_for_work(
    runtime: Runtime,
    key_id: str,
    session: str | None,
    realm_id: str,
    agent_id: str,
    seconds: float,
) -> list[str]:
    """The agent's claimable directives once there are some, or after `seconds` (none).

    Woken by every change in the realm (claims end, owners and statuses change), and at the
    moment a not-yet-due directive becomes due. Held under the caller's key (and the console
    session whose cookie opened it), like any wait.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with (
        runtime.hub.holds.hold(key_id, session) as watch,
        runtime.hub.watch_realm(realm_id, watch),
    ):
        while True:
            now = utcnow()
            async with runtime.db.transaction(realm_id) as conn:
                await realms.get(conn, realm_id)
                found = await claims.claimable(conn, realm_id, agent_id, now, 100)
                due = None if found else await claims.next_due(conn, realm_id, agent_id, now)
            refuse_ended(watch)
            remaining = deadline - loop.time()
            if found or watch.ended is not None or remaining <= 0:
                return found
            if due is not None:
                remaining = min(remaining, max(0.0, (due - now).total_seconds()) + 0.01)
            await watch.wait(remaining)
