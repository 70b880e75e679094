"""The compare-and-swap PATCH of a directive, answered before Litestar routes the request.

`PATCH /v1/realms/{realm}/directives/{id}` is the hot write, and Litestar's routing, its
per-route layers, the body's two decodings and the response objects cost a third of the
worker's time per write (docs/benchmarks.md, issue 18). This path runs the same service call
as the routed handler (`DirectiveController.update`) from the raw ASGI scope, and answers with
the same status, headers and bytes: the new directive and its ETag, or the problem the same
error makes through the problem map (api/problems.py), 412 and 409 included.

The HTTP edge (api/edges.py) has already run: the media type, a second If-Match, the body
deadline (its `receive`) and the early-answer drain (its `send`). The request id, metrics,
CORS and the security headers wrap this path as they wrap the router (app.py).

It declines, before any work, for anything unusual, and the router then does the full checks:
a query string, a malformed id, no bearer key or one the keyring has not cached, a realm or a
role the key lacks, a refused rate-limit token, an Idempotency-Key, a body that is not a
strictly valid `DirectivePatch` (unknown fields, wrong types), one larger than the limit, or
one that did not arrive in time. A body already read is handed to the router unchanged, so
what it answers (400, 408, 413) is its own.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.types import HTTPScope, Receive, ReceiveMessage, Send
from msgspec import UNSET

from charter.api import params, render, wire
from charter.api.directives import fill
from charter.api.problems import charter_error, unexpected_error
from charter.domain.access import Access
from charter.errors import BodyTimeout, CharterError
from charter.ids import is_directive_id
from charter.runtime import Runtime
from charter.services import writes
from charter.services.writes import Actor, Patch

# The routed handler's path template: the fast answer is labelled with it (metrics, spans).
ROUTE = "/v1/realms/{realm_id}/directives/{directive_id}"
_PREFIX = "/v1/realms/"
_JSON = b"application/json"
_decoder = msgspec.json.Decoder(wire.DirectivePatch)
_encoder = msgspec.json.Encoder()


def _target(scope: HTTPScope) -> tuple[str, str] | None:
    """(realm, directive) when the scope is a PATCH of one directive, else None."""
    if scope["method"] != "PATCH" or scope["query_string"]:
        return None
    path: str = scope["path"]
    if not path.startswith(_PREFIX):
        return None
    parts = path[len(_PREFIX) :].split("/")
    if len(parts) != 3 or parts[1] != "directives":
        return None
    realm, _, directive = parts
    if not params.is_realm_id(realm) or not is_directive_id(directive):
        return None
    return realm, directive


def _headers(scope: HTTPScope) -> tuple[str | None, str | None, int | None] | None:
    """(authorization, if-match, declared length); None: a header this path leaves alone."""
    authorization = if_match = None
    length: int | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is not None:
                return None
            authorization = value.decode("latin-1")
        elif name == b"if-match":
            if_match = value.decode("latin-1")
        elif name == b"content-length":
            digits = value.strip()
            if not digits.isdigit() or length is not None:
                return None
            length = int(digits)
        elif name in (b"idempotency-key", b"transfer-encoding", b"cookie"):
            return None
    return authorization, if_match, length


async def _body(
    receive: Receive, limit: int
) -> tuple[bytes | None, list[ReceiveMessage], BaseException | None]:
    """The whole body (None: not read to its end), what was received, and what was raised."""
    received: list[ReceiveMessage] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            message = await receive()
        except BodyTimeout as exc:
            return None, received, exc
        received.append(message)
        if message["type"] != "http.request":
            return None, received, None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, received, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), received, None


def _replaying(
    received: list[ReceiveMessage], raised: BaseException | None, receive: Receive
) -> Receive:
    """A `receive` that gives the router what this path already read, then reads on."""
    pending = deque(received)

    async def replay() -> ReceiveMessage:
        if pending:
            return pending.popleft()
        if raised is not None:
            raise raised
        return await receive()

    return replay


async def answer(
    runtime: Runtime, scope: HTTPScope, receive: Receive, send: Send
) -> Receive | None:
    """Answer the PATCH if this path may: None once answered, else the `receive` to route with
    (the original one, or one replaying a body this path read and then declined)."""
    target = _target(scope)
    if target is None:
        return receive
    realm, directive = target
    headers = _headers(scope)
    if headers is None:
        return receive
    authorization, if_match, length = headers
    limit = runtime.settings.max_request_bytes
    if authorization is None or length is None or length > limit:
        return receive
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return receive
    caller = runtime.keyring.known(secret.strip())
    if caller is None or not caller.sees_realm(realm) or not caller.may(Access.WRITE):
        return receive
    body, received, raised = await _body(receive, limit)
    if body is None:
        return _replaying(received, raised, receive)
    try:
        data = _decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return _replaying(received, None, receive)  # the router's 400, in its words
    if data.not_before is not UNSET:  # a time: Litestar's lax decoding reads it its own way
        return _replaying(received, None, receive)
    if runtime.limiter.take(caller.key_id):
        return _replaying(received, None, receive)  # refused: the router takes again, and says so
    actor = Actor(key_id=caller.key_id, name=caller.name)
    try:
        expected = params.expected_revision(if_match, data.expected_revision)
        change = fill(Patch, data)
        outcome = await runtime.write_whole(
            realm,
            lambda conn: writes.update(
                conn, realm, actor, directive, expected, change, runtime.settings.max_depth
            ),
        )
    except CharterError as exc:
        await _send(send, charter_error(_no_request, exc))
        return None
    except Exception as exc:  # as the problem map answers it: 503 or a bare 500
        await _send(send, unexpected_error(Request(scope), exc))
        return None
    payload = render.directive(outcome.directive, changed=outcome.changed)
    etag = f'"{outcome.directive.revision}"'.encode()
    await _respond(send, 200, [(b"etag", etag)], _JSON, _encoder.encode(payload))
    return None


_no_request: Any = None  # charter_error reads nothing from the request


async def _send(send: Send, response: Response[Any]) -> None:
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()
    ]
    media_type = str(response.media_type).encode("latin-1")
    status = response.status_code or 200
    await _respond(send, status, headers, media_type, _encoder.encode(response.content))


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], media_type: bytes, body: bytes
) -> None:
    raw = [*headers, (b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})
