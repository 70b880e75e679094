"""Every POST, PATCH and DELETE runs through here: one transaction, replayable by key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import msgspec
from litestar import Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api.deps import caller_of
from charter.errors import InvalidRequest
from charter.runtime import Runtime
from charter.services.idempotency import fingerprint, remember, replay_or_claim
from charter.store.idempotency import Scope, Stored

T = TypeVar("T")
HEADER = "idempotency-key"
_KEPT_HEADERS = ("etag", "location")


def _idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


async def write_once(
    runtime: Runtime,
    request: Request[Any, Any, Any],
    realm_id: str,
    run: Callable[[AsyncConnection], Awaitable[Response[T]]],
    kept: Callable[[T], object] | None = None,
    *,
    whole: bool = False,
) -> Response[T]:
    """Run a write in one transaction; with an Idempotency-Key, at most once.

    A retry with the same key and request replays the first response (status, body, ETag,
    Location) with `Idempotent-Replayed: true`, even where the write itself would now be
    refused (a CAS on a revision that has since moved on). Errors are not recorded: the
    transaction that raised them rolled back, record and all.

    `whole`: `run` awaits nothing but its statements, and without a key the transaction runs
    as `Runtime.write_whole` runs it (on SQLite, one call).
    """
    key = _idempotency_key(request)
    if key is None and whole:
        return await runtime.write_whole(realm_id, run)
    if key is None:
        async with runtime.write(realm_id) as conn:
            return await run(conn)
    scope = Scope(realm_id, caller_of(request).key_id, request.method, request.url.path, key)
    print_ = fingerprint(
        request.method, request.url.path, request.headers.get("if-match"), await request.body()
    )
    async with runtime.write(realm_id) as conn:
        stored = await replay_or_claim(conn, scope, print_)
        if stored is not None:
            return cast("Response[T]", _replay(stored))
        response = await run(conn)
        content: object = response.content
        if content is not None and kept is not None:
            content = kept(response.content)  # what may be stored (and so replayed)
        body = b"" if content is None else msgspec.json.encode(content)
        headers = {
            name: value for name, value in response.headers.items() if name.lower() in _KEPT_HEADERS
        }
        status = response.status_code or 200
        await remember(conn, scope, Stored(print_, status, headers, body))
    return response


def _replay(stored: Stored) -> Response[bytes]:
    headers = {**stored.headers, "Idempotent-Replayed": "true"}
    if not stored.body:
        return Response(b"", status_code=stored.status, headers=headers)
    return Response(
        stored.body, status_code=stored.status, headers=headers, media_type="application/json"
    )
