"""Realm routes: create, list, show, and the realm's whole tree."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery, JSONBody
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api import params, render, wire
from charter.api.auth import ACCESS
from charter.api.deps import CallerDep, RuntimeDep
from charter.api.idempotent import write_once
from charter.domain.access import ALL_REALMS, Access
from charter.services import reads
from charter.services import realms as realm_service
from charter.store import realms


class RealmController(Controller):
    path = "/v1/realms"
    tags = ["realms"]  # noqa: RUF012

    @post(
        "/",
        status_code=201,
        summary="Create a realm",
        operation_id="createRealm",
        description=(
            "Creates an empty realm (admin). The realm's id is a slug, chosen by the caller."
        ),
        opt={ACCESS: Access.ADMIN},
    )
    async def create(
        self,
        runtime: RuntimeDep,
        data: JSONBody[wire.RealmCreate],
        request: Request[Any, Any, Any],
    ) -> Response[wire.RealmOut]:
        data = params.strict_body(await request.json(), wire.RealmCreate)

        async def run(conn: AsyncConnection) -> Response[wire.RealmOut]:
            created = await realm_service.create(conn, data.id, data.name or data.id)
            headers = {"Location": f"/v1/realms/{created.id}"}
            return Response(render.realm(created), status_code=201, headers=headers)

        return await write_once(runtime, request, "", run)

    @get(
        "/",
        summary="List realms",
        operation_id="listRealms",
        description="The realms the key may see, by id, a page at a time.",
        opt={ACCESS: Access.ANY},
    )
    async def list_realms(
        self,
        runtime: RuntimeDep,
        caller: CallerDep,
        limit: params.Limit = None,
        cursor: FromQuery[str | None] = None,
    ) -> wire.RealmPage:
        size = params.limit(limit)
        only = None if caller.sees_realm(ALL_REALMS) else caller.realms
        async with runtime.db.transaction() as conn:
            page = await realms.page(conn, size + 1, params.decode_cursor(cursor), only)
        more = len(page) > size
        items = page[:size]
        next_cursor = params.encode_cursor(items[-1].id) if more else None
        return wire.RealmPage([render.realm(r) for r in items], next_cursor)

    @get(
        "/{realm_id:str}",
        summary="Show a realm and its revision",
        operation_id="getRealm",
        description="A realm, with its revision: the count of changes made in it.",
        opt={ACCESS: Access.ANY},
    )
    async def show(self, runtime: RuntimeDep, realm_id: params.RealmPath) -> wire.RealmOut:
        params.realm_id(realm_id)
        async with runtime.db.transaction(realm_id) as conn:
            return render.realm(await realms.get(conn, realm_id))

    @get(
        "/{realm_id:str}/tree",
        summary="The realm's whole forest, nested",
        operation_id="getRealmTree",
        description="Every directive of the realm as a forest of nested nodes, without bodies.",
        opt={ACCESS: Access.READ},
    )
    async def tree(self, runtime: RuntimeDep, realm_id: params.RealmPath) -> wire.ForestOut:
        params.realm_id(realm_id)
        async with runtime.db.transaction(realm_id) as conn:
            realm = await realms.get(conn, realm_id)
            roots = await reads.realm_forest(conn, realm_id)
        return wire.ForestOut(realm_id, realm.revision, [render.tree_node(r) for r in roots])
