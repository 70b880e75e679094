"""Template variables' values: an agent's profile and the realm's defaults (DESIGN §9)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, put
from litestar.params import JSONBody
from msgspec import UNSET, Meta, Struct, UnsetType
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api import params
from charter.api.agents import check_agent
from charter.api.auth import ACCESS
from charter.api.deps import ActorDep, RuntimeDep
from charter.api.idempotent import write_once
from charter.domain.access import Access
from charter.services import variables as service
from charter.store import realms
from charter.store import variables as store
from charter.store.variables import Variables

ProfileRevision = Annotated[int, Meta(ge=0)]
VariableMap = Annotated[
    dict[str, str],
    Meta(
        max_length=service.MAX_VARIABLES,
        description="name ([a-z][a-z0-9_]{0,63}) -> value (text, ≤ 1 KiB of UTF-8)",
    ),
]


class VariablesIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """PUT …/profile or …/variables: the whole map, replacing the one before."""

    variables: VariableMap
    expected_revision: ProfileRevision | UnsetType = UNSET


class VariablesOut(Struct, kw_only=True):
    realm_id: str
    agent_id: str | None = None
    revision: int
    variables: dict[str, str]
    updated_at: datetime | None
    changed: bool = True


def _out(
    realm_id: str, agent_id: str | None, v: Variables, changed: bool
) -> Response[VariablesOut]:
    body = VariablesOut(
        realm_id=realm_id,
        agent_id=agent_id,
        revision=v.revision,
        variables=v.variables,
        updated_at=v.updated_at,
        changed=changed,
    )
    return Response(body, headers={"ETag": f'"{v.revision}"'})


class VariablesController(Controller):
    path = "/v1/realms/{realm_id:str}"
    tags = ["variables"]  # noqa: RUF012

    @get(
        "/agents/{agent_id:str}/profile",
        summary="The agent's profile: its template variables",
        operation_id="getProfile",
        description=(
            "The agent's own values for template variables, with the profile revision as ETag "
            "(0 and no values when never set)."
        ),
        opt={ACCESS: Access.READ},
    )
    async def get_profile(
        self, runtime: RuntimeDep, realm_id: params.RealmPath, agent_id: params.AgentPath
    ) -> Response[VariablesOut]:
        check_agent(realm_id, agent_id)
        async with runtime.db.transaction(realm_id) as conn:
            await realms.get(conn, realm_id)
            found = await store.profile(conn, realm_id, agent_id)
        return _out(realm_id, agent_id, found, changed=False)

    @put(
        "/agents/{agent_id:str}/profile",
        summary="Replace the agent's profile",
        operation_id="putProfile",
        description=(
            "Replaces the agent's template variables; compare-and-swap on the profile revision "
            "(If-Match or expected_revision, 0 for the first). Refused with 422 "
            "undefined-variable when the agent's prompt would hold an undefined placeholder."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def put_profile(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        realm_id: params.RealmPath,
        agent_id: params.AgentPath,
        data: JSONBody[VariablesIn],
        request: Request[Any, Any, Any],
        if_match: params.IfMatch = None,
    ) -> Response[VariablesOut]:
        check_agent(realm_id, agent_id)
        data = params.strict_body(await request.json(), VariablesIn)
        values = service.validate(data.variables)
        expected = params.expected_revision(if_match, data.expected_revision)

        async def run(conn: AsyncConnection) -> Response[VariablesOut]:
            done = await service.put_profile(conn, realm_id, actor, agent_id, expected, values)
            return _out(realm_id, agent_id, done.variables, done.changed)

        return await write_once(runtime, request, realm_id, run)

    @get(
        "/variables",
        summary="The realm's default template variables",
        operation_id="getVariables",
        description=(
            "The values template variables take when an agent's profile does not set them, with "
            "their revision as ETag (0 when never set)."
        ),
        opt={ACCESS: Access.READ},
    )
    async def get_defaults(
        self, runtime: RuntimeDep, realm_id: params.RealmPath
    ) -> Response[VariablesOut]:
        params.realm_id(realm_id)
        async with runtime.db.transaction(realm_id) as conn:
            await realms.get(conn, realm_id)
            found = await store.defaults(conn, realm_id)
        return _out(realm_id, None, found, changed=False)

    @put(
        "/variables",
        summary="Replace the realm's default template variables",
        operation_id="putVariables",
        description=(
            "Replaces the realm's defaults; compare-and-swap on their revision (If-Match or "
            "expected_revision, 0 for the first). Refused with 422 undefined-variable when an "
            "affected agent's prompt would hold an undefined placeholder."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def put_defaults(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        realm_id: params.RealmPath,
        data: JSONBody[VariablesIn],
        request: Request[Any, Any, Any],
        if_match: params.IfMatch = None,
    ) -> Response[VariablesOut]:
        params.realm_id(realm_id)
        data = params.strict_body(await request.json(), VariablesIn)
        values = service.validate(data.variables)
        expected = params.expected_revision(if_match, data.expected_revision)

        async def run(conn: AsyncConnection) -> Response[VariablesOut]:
            done = await service.put_defaults(conn, realm_id, actor, expected, values)
            return _out(realm_id, None, done.variables, done.changed)

        return await write_once(runtime, request, realm_id, run)
