"""Schedule routes: a CAS write on a directive at a given time; list them, cancel one."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromQuery, JSONBody, PathParameter
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api import params, wire
from charter.api.auth import ACCESS
from charter.api.deps import ActorDep, RuntimeDep
from charter.api.idempotent import write_once
from charter.domain.access import Access
from charter.domain.work import ScheduleState
from charter.errors import InvalidRequest
from charter.ids import SUFFIX
from charter.services import schedules as timed
from charter.services.schedules import NewSchedule
from charter.store import directives, realms, schedules
from charter.store.schedules import Schedule

_SCHEDULE_ID = re.compile(f"sch_{SUFFIX}")
SchedulePath = Annotated[
    str, PathParameter(description="a schedule id", schema_extra={"pattern": f"^sch_{SUFFIX}$"})
]


def schedule_out(s: Schedule) -> wire.ScheduleOut:
    return wire.ScheduleOut(
        id=s.id,
        directive_id=s.directive_id,
        at=s.at,
        action=s.action,
        state=ScheduleState(s.state),
        expected_revision=s.expected_revision,
        created_at=s.created_at,
        ran_at=s.ran_at,
        reason=s.reason,
    )


class ScheduleController(Controller):
    path = "/v1/realms/{realm_id:str}/directives/{directive_id:str}/schedules"
    tags = ["schedules"]  # noqa: RUF012

    @post(
        "/",
        status_code=201,
        summary="Schedule a change of the directive",
        operation_id="createSchedule",
        description=(
            "At `at`, runs the action (activate a version, set a status, a rollout percent, "
            "promote) once, as a CAS write by schedule:{id}; with expected_revision, a moved "
            "revision fails it instead."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def create(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        data: JSONBody[wire.ScheduleIn],
        request: Request[Any, Any, Any],
    ) -> Response[wire.ScheduleOut]:
        data = params.strict_body(await request.json(), wire.ScheduleIn)
        params.realm_id(realm_id)
        params.directive_id(directive_id)
        new = NewSchedule(data.at, data.action, data.expected_revision)

        async def run(conn: AsyncConnection) -> Response[wire.ScheduleOut]:
            made = await timed.create(conn, realm_id, actor, directive_id, new)
            return Response(schedule_out(made), status_code=201)

        return await write_once(runtime, request, realm_id, run)

    @get(
        "/",
        summary="List the directive's schedules",
        operation_id="listSchedules",
        description="The directive's schedules in the order they were made, with their states.",
        opt={ACCESS: Access.READ},
    )
    async def list_schedules(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        limit: params.Limit = None,
        cursor: FromQuery[str | None] = None,
    ) -> wire.SchedulePage:
        params.realm_id(realm_id)
        params.directive_id(directive_id)
        size = params.limit(limit)
        async with runtime.db.transaction(realm_id) as conn:
            await realms.get(conn, realm_id)
            await directives.revision_or_404(conn, realm_id, directive_id)
            page = await schedules.for_directive(
                conn, realm_id, directive_id, size + 1, params.decode_cursor(cursor)
            )
        items = page[:size]
        next_cursor = params.encode_cursor(items[-1].id) if len(page) > size else None
        return wire.SchedulePage(items=[schedule_out(s) for s in items], next_cursor=next_cursor)

    @delete(
        "/{schedule_id:str}",
        status_code=200,
        summary="Cancel a pending schedule",
        operation_id="cancelSchedule",
        description="Cancels the schedule while it is pending; 409 invalid-transition after.",
        opt={ACCESS: Access.WRITE},
    )
    async def cancel(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        schedule_id: SchedulePath,
        request: Request[Any, Any, Any],
    ) -> Response[wire.ScheduleOut]:
        params.realm_id(realm_id)
        params.directive_id(directive_id)
        if _SCHEDULE_ID.fullmatch(schedule_id) is None:
            raise InvalidRequest("schedule ids look like sch_ followed by 26 characters")

        async def run(conn: AsyncConnection) -> Response[wire.ScheduleOut]:
            ended = await timed.cancel(conn, realm_id, actor, directive_id, schedule_id)
            return Response(schedule_out(ended))

        return await write_once(runtime, request, realm_id, run)
