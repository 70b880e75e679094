"""The HTTP edge: checks and limits that hold for every request, before any routing.

`CharterApp` (app.py) applies these to every HTTP request, routed and fast path alike (DESIGN
§12). The one exception changes nothing: a cached prompt read answered at once skips the edge,
because the fast path takes only what the edge lets through untouched (no body, no `If-Match`,
no percent-encoded path, no header given twice; api/fastpath.py).

- a request body must be `application/json` (parameters: `charset=utf-8` only); anything else
  is 415 `unsupported-media-type`. A request without a body is never refused for its type.
  The console's forms (`/console/…`, ADR 0011) post `application/x-www-form-urlencoded`;
- a path holding an encoded slash (`%2F`) is 400: the server decodes the path before routing,
  so `a%2Fb` would otherwise be routed as two segments;
- `If-Match` may appear once (two are 400; which one would the write compare?);
- the body must arrive within `body_timeout_seconds` of the request, else 408
  `request-timeout` (the wrapped `receive` raises `BodyTimeout`, which the problem map answers);
- an answer given before the whole body was read (413, 415, 408, any early refusal) drains what
  the client is still sending, within bounds, and says `Connection: close`: closing a socket
  with unread bytes makes the kernel reset it, and the client then loses the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import NamedTuple

import msgspec
from litestar.types import HTTPScope, Message, Receive, ReceiveMessage, Send

from charter.api.problems import PROBLEM_MEDIA_TYPE, problem_document
from charter.errors import BodyTimeout

# Beyond the body limit, at most this much more is read and thrown away before closing.
DRAIN_BYTES = 1024 * 1024
_CLOSE = (b"connection", b"close")
_CLOSING_STATUSES = frozenset({408, 413})
CONSOLE_FORMS = "/console/"
_encoder = msgspec.json.Encoder()


def media_type_accepted(content_type: str) -> bool:
    """`application/json`, with at most a `charset=utf-8` parameter (any case, quoted or not)."""
    media_type, *parameters = content_type.split(";")
    if media_type.strip().lower() != "application/json":
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            return False
    return True


class Head(NamedTuple):
    """What the edge reads from the request headers, in one pass (a tuple: one per request)."""

    has_body: bool
    declared_length: int | None
    content_types: tuple[str, ...]
    if_matches: int

    @classmethod
    def of(cls, headers: Iterable[tuple[bytes, bytes]]) -> Head:
        has_body = False
        declared: int | None = None
        types: list[str] = []
        if_matches = 0
        for name, value in headers:
            if name == b"content-length":
                has_body = has_body or value.strip() != b"0"
                digits = value.strip()
                declared = int(digits) if digits.isdigit() and len(digits) <= 19 else None
            elif name == b"transfer-encoding":
                has_body = True
            elif name == b"content-type":
                types.append(value.decode("latin-1"))
            elif name == b"if-match":
                if_matches += 1
        return cls(has_body, declared, tuple(types), if_matches)


def _form_accepted(scope: HTTPScope, content_type: str) -> bool:
    """A console form post: urlencoded, under /console/ only."""
    path: str = scope["path"]
    media_type = content_type.split(";")[0].strip().lower()
    return path.startswith(CONSOLE_FORMS) and media_type == "application/x-www-form-urlencoded"


def refusal(scope: HTTPScope, head: Head) -> tuple[int, str, str] | None:
    """(status, code, detail) when the request is refused at the edge, else None."""
    raw_path: bytes = scope.get("raw_path") or b""
    if b"%2f" in raw_path.partition(b"?")[0].lower():
        return 400, "invalid-request", "a path segment must not hold an encoded slash (%2F)"
    if head.if_matches > 1:
        return 400, "invalid-request", "If-Match may be given once"
    if head.has_body and (
        len(head.content_types) != 1
        or not (
            media_type_accepted(head.content_types[0])
            or _form_accepted(scope, head.content_types[0])
        )
    ):
        detail = "request bodies must be application/json (charset utf-8, if any)"
        return 415, "unsupported-media-type", detail
    return None


def problem_bytes(status: int, code: str, detail: str) -> bytes:
    return _encoder.encode(problem_document(status, code, detail))


class Guard:
    """One request's `receive` (timed) and `send` (drains and closes after an early answer).

    Made only for a request with a body, or one refused here: without a body there is nothing
    to time, drain or close for.
    """

    def __init__(self, head: Head, receive: Receive, send: Send, timeout: float) -> None:
        self._receive = receive
        self._send = send
        self._deadline = asyncio.get_running_loop().time() + timeout
        self._body_done = not head.has_body
        self._declared = head.declared_length
        self._received = 0
        self._timed_out = False

    async def receive(self) -> ReceiveMessage:
        if self._body_done:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            self._timed_out = True
            raise BodyTimeout("the request body did not arrive in time") from None
        self._note(message)
        return message

    def _note(self, message: ReceiveMessage) -> None:
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._body_done = True
        else:
            self._received += len(message.get("body", b""))

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            closing = message["status"] in _CLOSING_STATUSES
            if not self._body_done:
                closing = True
                await self._drain()
            if closing:
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, _CLOSE]}
        await self._send(message)

    async def _drain(self) -> None:
        """Read what the client is still sending, up to DRAIN_BYTES, within the deadline."""
        if self._timed_out:
            return
        if self._declared is not None and self._declared - self._received > DRAIN_BYTES:
            return  # far too much to read: close at once
        budget = DRAIN_BYTES
        try:
            async with asyncio.timeout_at(self._deadline):
                while not self._body_done and budget > 0:
                    message = await self._receive()
                    budget -= len(message.get("body", b""))  # type: ignore[arg-type]
                    self._note(message)
        except TimeoutError:
            self._timed_out = True

    async def refuse(self, status: int, code: str, detail: str) -> None:
        body = problem_bytes(status, code, detail)
        headers = [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})
