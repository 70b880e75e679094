"""Rollout routes: start or change, report, promote, abort; and outcomes (DESIGN §8)."""

from __future__ import annotations

from typing import Any, Protocol

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api import params, render, wire
from charter.api.auth import ACCESS
from charter.api.deps import ActorDep, CallerDep, RuntimeDep
from charter.api.idempotent import write_once
from charter.domain.access import Access, Role
from charter.domain.rollouts import Guard
from charter.errors import Forbidden, NotFound
from charter.runtime import Runtime
from charter.services import outcomes
from charter.services import rollouts as service
from charter.services.writes import Actor, Expected, Outcome
from charter.store import directives


def _headers(outcome: Outcome) -> dict[str, str]:
    return {"ETag": f'"{outcome.directive.revision}"'}


class _Ending(Protocol):
    """`service.promote` or `service.abort`: both end the running rollout."""

    async def __call__(
        self,
        conn: AsyncConnection,
        realm_id: str,
        actor: Actor,
        directive_id: str,
        expected: Expected,
        message: str | None = None,
    ) -> Outcome: ...


async def _end(
    runtime: Runtime,
    actor: Actor,
    realm_id: str,
    directive_id: str,
    request: Request[Any, Any, Any],
    if_match: str | None,
    ending: _Ending,
) -> Response[wire.DirectiveOut]:
    _ids(realm_id, directive_id)
    data = params.decode_body(await request.body(), wire.RolloutEndIn)
    expected = params.expected_revision(if_match, data.expected_revision)

    async def run(conn: AsyncConnection) -> Response[wire.DirectiveOut]:
        outcome = await ending(conn, realm_id, actor, directive_id, expected, data.message)
        return Response(render.directive(outcome.directive), headers=_headers(outcome))

    return await write_once(runtime, request, realm_id, run)


class RolloutController(Controller):
    path = "/v1/realms/{realm_id:str}/directives/{directive_id:str}/rollout"
    tags = ["rollouts"]  # noqa: RUF012

    @put(
        "/",
        summary="Start or change the rollout",
        operation_id="putRollout",
        description=(
            "Starts a rollout of a version to a percent of the agents (and the pinned ones), or "
            "changes the running one's percent, pinned agents or guard; compare-and-swap."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def put_rollout(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        data: JSONBody[wire.RolloutIn],
        request: Request[Any, Any, Any],
        if_match: params.IfMatch = None,
    ) -> Response[wire.DirectiveOut]:
        _ids(realm_id, directive_id)
        data = params.strict_body(await request.json(), wire.RolloutIn)
        expected = params.expected_revision(if_match, data.expected_revision)
        guard = None
        if data.guard is not None:
            g = data.guard
            guard = Guard(g.metric, g.higher_is_better, g.min_samples, g.max_regression)
        change = service.RolloutChange(
            data.version, data.percent, frozenset(data.agents), guard, data.message
        )

        async def run(conn: AsyncConnection) -> Response[wire.DirectiveOut]:
            outcome = await service.put(conn, realm_id, actor, directive_id, expected, change)
            body = render.directive(outcome.directive, changed=outcome.changed)
            return Response(body, headers=_headers(outcome))

        return await write_once(runtime, request, realm_id, run)

    @get(
        "/",
        summary="The running rollout and how its arms do",
        operation_id="getRollout",
        description=(
            "The running rollout, and per metric each arm's n, mean and standard deviation, with "
            "candidate - control and its Welch 95 % interval."
        ),
        opt={ACCESS: Access.READ},
    )
    async def get_rollout(
        self, runtime: RuntimeDep, realm_id: params.RealmPath, directive_id: params.DirectivePath
    ) -> Response[wire.RolloutReport]:
        _ids(realm_id, directive_id)
        async with runtime.db.transaction(realm_id) as conn:
            found = await directives.get(conn, realm_id, directive_id)
            if found.rollout is None:
                raise NotFound(f"directive {directive_id!r} has no running rollout")
            metrics = await outcomes.report(conn, realm_id, found.rollout.id)
        report = render.rollout_report(found, found.rollout, metrics)
        return Response(report, headers={"ETag": f'"{found.revision}"'})

    @delete(
        "/",
        status_code=200,
        summary="Abort the rollout",
        operation_id="abortRollout",
        description=(
            "Ends the rollout: every agent sees the active version again; compare-and-swap."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def abort(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        request: Request[Any, Any, Any],
        if_match: params.IfMatch = None,
    ) -> Response[wire.DirectiveOut]:
        return await _end(runtime, actor, realm_id, directive_id, request, if_match, service.abort)

    @post(
        "/promote",
        status_code=200,
        summary="Promote the candidate",
        operation_id="promoteRollout",
        description=(
            "Makes the rollout's candidate the active version and ends the rollout; "
            "compare-and-swap."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def promote(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        request: Request[Any, Any, Any],
        if_match: params.IfMatch = None,
    ) -> Response[wire.DirectiveOut]:
        return await _end(
            runtime, actor, realm_id, directive_id, request, if_match, service.promote
        )


class OutcomeController(Controller):
    path = "/v1/realms/{realm_id:str}/outcomes"
    tags = ["rollouts"]  # noqa: RUF012

    @post(
        "/",
        status_code=202,
        summary="Report an outcome",
        operation_id="postOutcome",
        description=(
            "A metric's value for a composition an agent used; it counts to the arm that "
            "composition showed of each running rollout. An agent key reports only for itself."
        ),
        opt={ACCESS: Access.REPORT},
    )
    async def post_outcome(
        self,
        runtime: RuntimeDep,
        caller: CallerDep,
        realm_id: params.RealmPath,
        data: JSONBody[wire.OutcomeIn],
        request: Request[Any, Any, Any],
    ) -> Response[wire.OutcomeAccepted]:
        params.realm_id(realm_id)
        data = params.strict_body(await request.json(), wire.OutcomeIn)
        if caller.role is Role.AGENT and caller.agent_id != data.agent_id:
            raise Forbidden("an agent key reports outcomes only for its own agent id")
        poked: list[str] = []

        async def run(conn: AsyncConnection) -> Response[wire.OutcomeAccepted]:
            accepted = await outcomes.record(
                conn, realm_id, data.composition_id, data.agent_id, data.metric, data.value
            )
            poked.extend(a.directive_id for a in accepted.attributed)
            return Response(render.outcome(accepted), status_code=202)

        response = await write_once(runtime, request, realm_id, run)
        if poked and runtime.guard is not None:
            runtime.guard.poke(realm_id, poked)
        return response


def _ids(realm_id: params.RealmPath, directive_id: params.DirectivePath) -> None:
    params.realm_id(realm_id)
    params.directive_id(directive_id)
