"""The cached prompt read, answered before Litestar routes the request.

`GET /v1/realms/{realm}/agents/{agent}/prompt` is what agents call most, and when the answer
is in the local cache tier and the key is one the keyring already knows, the work is three
dictionary lookups. Routing, the per-route layers and response objects cost more than that
(docs/benchmarks.md), so this path answers such a request from the raw ASGI scope.

It only ever answers when it can give exactly what the routed handler would: the same
status, headers and bytes. Anything else — a query string, an unknown or refused key, a
malformed id, a rate-limited key, a cache miss — is declined and takes the ordinary route,
which does the full checks and produces the problem response.
"""

from __future__ import annotations

from litestar.types import HTTPScope, Send

from charter.api.agents import agent_ids_valid, entity_tags, matches
from charter.cache.entries import Entry
from charter.domain.access import Access
from charter.runtime import Runtime

_PREFIX = "/v1/realms/"
_SUFFIX = "/prompt"
_JSON = (b"content-type", b"application/json")


def _target(scope: HTTPScope) -> tuple[str, str] | None:
    """(realm, agent) when the scope is a plain cached-prompt read, else None."""
    if scope["method"] != "GET" or scope["query_string"]:
        return None
    path: str = scope["path"]
    if not path.startswith(_PREFIX) or not path.endswith(_SUFFIX):
        return None
    parts = path[len(_PREFIX) : -len(_SUFFIX)].split("/")
    if len(parts) != 3 or parts[1] != "agents":
        return None
    realm, _, agent = parts
    return (realm, agent) if agent_ids_valid(realm, agent) else None


def _headers(scope: HTTPScope) -> tuple[str | None, str | None]:
    authorization = if_none_match = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"if-none-match":
            if_none_match = value.decode("latin-1")
    return authorization, if_none_match


def cached_answer(runtime: Runtime, scope: HTTPScope) -> tuple[int, Entry] | None:
    """The status and entry to send, or None to decline."""
    target = _target(scope)
    if target is None:
        return None
    realm, agent = target
    authorization, if_none_match = _headers(scope)
    if authorization is None:
        return None
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    caller = runtime.keyring.known(secret.strip())
    if caller is None or not caller.sees_realm(realm) or not caller.may(Access.PROMPT, agent):
        return None
    entry = runtime.prompts.cached(realm, agent)
    if entry is None:
        return None
    if runtime.limiter.take(caller.key_id):
        return None  # refused: the routed path takes again, refuses, and says so
    return (304 if matches(entry, entity_tags(if_none_match)) else 200), entry


async def send_answer(send: Send, status: int, entry: Entry) -> None:
    etag = (b"etag", f'"{entry.composition_id}"'.encode())
    if status == 304:  # as Litestar sends it: no body, so no length and no type
        headers = [etag]
        body = b""
    else:
        body = entry.payload
        headers = [_JSON, etag, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
