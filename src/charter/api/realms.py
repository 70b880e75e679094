"""Realm routes: create, list, show, and the realm's whole tree."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from charter.api import params, render, wire
from charter.api.deps import RuntimeDep
from charter.services import reads
from charter.store import realms
from charter.store._time import utcnow


class RealmController(Controller):
    path = "/v1/realms"
    tags = ["realms"]  # noqa: RUF012

    @post("/", status_code=201, summary="Create a realm")
    async def create(self, runtime: RuntimeDep, data: JSONBody[wire.RealmCreate]) -> wire.RealmOut:
        async with runtime.db.transaction(data.id) as conn:
            created = await realms.create(conn, data.id, data.name or data.id, utcnow())
        return render.realm(created)

    @get("/", summary="List realms")
    async def list_realms(
        self,
        runtime: RuntimeDep,
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> wire.RealmPage:
        size = params.limit(limit)
        async with runtime.db.transaction() as conn:
            page = await realms.page(conn, size + 1, params.decode_cursor(cursor))
        more = len(page) > size
        items = page[:size]
        next_cursor = params.encode_cursor(items[-1].id) if more else None
        return wire.RealmPage([render.realm(r) for r in items], next_cursor)

    @get("/{realm_id:str}", summary="Show a realm and its revision")
    async def show(self, runtime: RuntimeDep, realm_id: FromPath[str]) -> wire.RealmOut:
        params.realm_id(realm_id)
        async with runtime.db.transaction(realm_id) as conn:
            return render.realm(await realms.get(conn, realm_id))

    @get("/{realm_id:str}/tree", summary="The realm's whole forest, nested")
    async def tree(self, runtime: RuntimeDep, realm_id: FromPath[str]) -> wire.ForestOut:
        params.realm_id(realm_id)
        async with runtime.db.transaction(realm_id) as conn:
            realm = await realms.get(conn, realm_id)
            roots = await reads.realm_forest(conn, realm_id)
        return wire.ForestOut(realm_id, realm.revision, [render.tree_node(r) for r in roots])
