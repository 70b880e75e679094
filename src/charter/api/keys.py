"""API keys (admin): create (the secret is shown once), list, revoke."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromQuery, JSONBody
from msgspec import Meta, Struct
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api import params
from charter.api.auth import ACCESS
from charter.api.deps import RuntimeDep
from charter.api.idempotent import write_once
from charter.api.wire import REALM_ID_PATTERN, AgentId, Name, _In
from charter.domain.access import ALL_REALMS, Access, Role
from charter.errors import InvalidRequest, NotFound
from charter.ids import is_key_id
from charter.services import keys as key_service
from charter.store import keys
from charter.store.keys import Key

log = logging.getLogger("charter.keys")

RealmOrAll = Annotated[str, Meta(min_length=1, max_length=63)]


class KeyCreate(_In):
    role: Role
    realms: Annotated[list[RealmOrAll], Meta(min_length=1, max_length=1000)]
    agent_id: AgentId | None = None
    name: Name | None = None


class KeyOut(Struct, kw_only=True):
    id: str
    role: Role
    realms: list[str]
    agent_id: str | None
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut, kw_only=True):
    # The secret: in the first response only. A replay (same Idempotency-Key) answers null,
    # because only the secret's hash is ever stored: revoke the key and make another.
    key: str | None


class KeyPage(Struct):
    items: list[KeyOut]
    next_cursor: str | None


def _out(key: Key) -> KeyOut:
    return KeyOut(
        id=key.id,
        role=key.role,
        realms=key.realms,
        agent_id=key.agent_id,
        name=key.name,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


_SLUG = re.compile(REALM_ID_PATTERN)


def _check_realms(realms: list[str]) -> None:
    for realm in realms:
        if realm != ALL_REALMS and _SLUG.match(realm) is None:
            raise InvalidRequest('realms are realm ids, or ["*"] for every realm')


class KeyController(Controller):
    path = "/v1/keys"
    tags = ["keys"]  # noqa: RUF012

    @post(
        "/",
        status_code=201,
        summary="Create a key",
        operation_id="createKey",
        description="Mints an API key (admin). The secret is in this response only.",
        opt={ACCESS: Access.ADMIN},
    )
    async def create(
        self, runtime: RuntimeDep, data: JSONBody[KeyCreate], request: Request[Any, Any, Any]
    ) -> Response[KeyCreated]:
        data = params.strict_body(await request.json(), KeyCreate)
        _check_realms(data.realms)

        async def run(conn: AsyncConnection) -> Response[KeyCreated]:
            key, secret = await key_service.mint(
                conn, data.role, data.realms, data.agent_id, data.name
            )
            out = _out(key)
            fields = {name: getattr(out, name) for name in KeyOut.__struct_fields__}
            body = KeyCreated(**fields, key=secret)
            return Response(body, status_code=201, headers={"Location": f"/v1/keys/{key.id}"})

        def without_secret(created: KeyCreated) -> KeyCreated:
            return msgspec.structs.replace(created, key=None)

        return await write_once(runtime, request, "", run, kept=without_secret)

    @get(
        "/",
        summary="List keys (never their secrets)",
        operation_id="listKeys",
        description="The API keys, revoked ones included, never their secrets.",
        opt={ACCESS: Access.ADMIN},
    )
    async def list_keys(
        self,
        runtime: RuntimeDep,
        limit: params.Limit = None,
        cursor: FromQuery[str | None] = None,
    ) -> KeyPage:
        size = params.limit(limit)
        async with runtime.db.transaction() as conn:
            page = await keys.page(conn, size + 1, params.decode_cursor(cursor))
        items = page[:size]
        next_cursor = params.encode_cursor(items[-1].id) if len(page) > size else None
        return KeyPage([_out(k) for k in items], next_cursor)

    @delete(
        "/{key_id:str}",
        status_code=204,
        summary="Revoke a key",
        operation_id="revokeKey",
        description="Revokes an API key, in every process, from the next request on.",
        opt={ACCESS: Access.ADMIN},
    )
    async def revoke(
        self, runtime: RuntimeDep, key_id: params.KeyPath, request: Request[Any, Any, Any]
    ) -> Response[None]:
        if not is_key_id(key_id):
            raise NotFound(f"key {key_id!r} not found")

        async def run(conn: AsyncConnection) -> Response[None]:
            await key_service.revoke(conn, key_id)
            return Response(None, status_code=204)

        response = await write_once(runtime, request, "", run)
        # Effective on the very next request here, and in every process the bus reaches; a
        # process the bus cannot reach is not coherent, and checks every key in the database.
        runtime.hub.revoke_key(key_id)
        try:
            await runtime.bus.revoke_key(key_id)
        except Exception as exc:
            log.warning("revocation not broadcast (%s)", type(exc).__name__)
        return response
