"""The cached prompt read and its long poll, answered before Litestar routes the request.

`GET /v1/realms/{realm}/agents/{agent}/prompt` is what agents call most, and when the answer
is in the local cache tier and the key is one the keyring already knows, the work is three
dictionary lookups. Routing, the per-route layers and response objects cost more than that
(docs/benchmarks.md), so this path answers such a request from the raw ASGI scope. The same
goes for its long poll (`?wait=N` with `If-None-Match`): a held request then costs a watch
and a coroutine, not Litestar's request, handler and response objects as well, which is what
thousands of waiting agents are made of.

It only ever answers when it can give exactly what the routed handler would: the same
status, headers and bytes. Anything else — another query string, an unknown or refused key,
a malformed id, a rate-limited key, a cache miss, an error while waiting — is declined and
takes the ordinary route, which does the full checks and produces the problem response. So
is anything the HTTP edge (api/edges.py) acts on: a body, an `If-Match`, a percent-encoded
path, a header given twice. What this path takes, the edge would have let through untouched,
so the app answers it before the edge when the answer is known at once, adding the same
headers, request id and metrics as to any other answer (app.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from litestar.types import HTTPScope, Send

from charter.api.agents import (
    MAX_WAIT_SECONDS,
    agent_ids_valid,
    changed,
    entity_tags,
    matches,
)
from charter.cache.entries import Entry
from charter.domain.access import Access
from charter.runtime import Runtime

# The routed handler's path template: the fast answer is labelled with it (metrics, spans).
ROUTE = "/v1/realms/{realm_id}/agents/{agent_id}/prompt"
_PREFIX = "/v1/realms/"
_SUFFIX = "/prompt"
_WAIT = re.compile(rb"wait=(0|[1-9][0-9]?)")  # plain digits, as params.number reads them
_JSON = (b"content-type", b"application/json")
# Headers the edge reads for a request with a body (its length, its framing) or counts
# (`If-Match`): with any of them the request takes the edge and the ordinary route.
_EDGE_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"if-match"})


class Read(NamedTuple):
    """A cached prompt read this path may answer (a tuple: made on every such read)."""

    key_id: str
    realm: str
    agent: str
    entry: Entry
    tags: frozenset[str]
    wait: int  # seconds to long-poll; 0: answer at once
    headers: dict[bytes, bytes]  # the request's, by name (no name is given twice)
    unchanged: bool  # the entry matches `tags`: a 304, or a long poll to hold

    @property
    def at_once(self) -> bool:
        """Whether the answer is known now (no long poll to hold)."""
        return not (self.wait and self.unchanged)


# What the checks of a path and of an If-None-Match value found, kept for the next request
# that sends the same (agents poll the same path with the same ETag): a dictionary lookup in
# place of a parse and two regular expressions. Bounded: emptied when full.
_MEMO_SIZE = 10_000
_targets: dict[str, tuple[str, str] | None] = {}
_tags: dict[bytes, frozenset[str]] = {}


def _wait(query: bytes) -> int | None:
    """Seconds to long-poll (0 without a query string); None: the routed handler reads it."""
    if not query:
        return 0
    found = _WAIT.fullmatch(query)
    if found is None:
        return None
    seconds = int(found.group(1))
    return seconds if seconds <= MAX_WAIT_SECONDS else None


def _target(scope: HTTPScope) -> tuple[str, str, int] | None:
    """(realm, agent, wait) when the scope is a plain prompt read, else None."""
    if scope["method"] != "GET":
        return None
    wait = _wait(scope["query_string"])
    if wait is None or b"%" in (scope.get("raw_path") or b"%"):
        return None  # a decoded path may hide what the edge refuses (an encoded slash)
    path: str = scope["path"]
    try:
        found = _targets[path]
    except KeyError:
        found = _path_target(path)
        if len(_targets) >= _MEMO_SIZE:
            _targets.clear()
        _targets[path] = found
    return None if found is None else (found[0], found[1], wait)


def _path_target(path: str) -> tuple[str, str] | None:
    if not path.startswith(_PREFIX) or not path.endswith(_SUFFIX):
        return None
    parts = path[len(_PREFIX) : -len(_SUFFIX)].split("/")
    if len(parts) != 3 or parts[1] != "agents":
        return None
    realm, _, agent = parts
    return (realm, agent) if agent_ids_valid(realm, agent) else None


def _entity_tags(if_none_match: bytes | None) -> frozenset[str]:
    if not if_none_match:
        return _NO_TAGS
    try:
        return _tags[if_none_match]
    except KeyError:
        tags = frozenset(entity_tags(if_none_match.decode("latin-1")))
        if len(_tags) >= _MEMO_SIZE:
            _tags.clear()
        _tags[if_none_match] = tags
        return tags


_NO_TAGS: frozenset[str] = frozenset()


def cached_read(runtime: Runtime, scope: HTTPScope) -> Read | None:
    """The read to answer here, or None to decline. Takes the caller's rate-limit token."""
    target = _target(scope)
    if target is None:
        return None
    realm, agent, wait = target
    pairs = scope["headers"]
    if not isinstance(pairs, list):  # as servers give them; any other iterable: routed
        return None
    headers = dict(pairs)
    if len(headers) != len(pairs) or not _EDGE_HEADERS.isdisjoint(headers):
        return None  # the edge has to see it (see above)
    authorization = headers.get(b"authorization")
    if authorization is None:
        return None
    scheme, _, secret = authorization.decode("latin-1").partition(" ")
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
    tags = _entity_tags(headers.get(b"if-none-match"))
    return Read(caller.key_id, realm, agent, entry, tags, wait, headers, matches(entry, tags))


async def answer(runtime: Runtime, read: Read, send: Send) -> bool:
    """Answer the read, after its long poll if it has one; False: nothing was sent, route it."""
    entry = read.entry
    if not read.at_once:
        try:
            entry = await changed(
                runtime, read.key_id, read.realm, read.agent, read.tags, read.wait
            )
        except Exception:
            # Nothing sent yet: the routed handler answers, problem and all (a key's cap
            # reached, its revocation while it waited, an error while reading).
            return False
    await send_answer(send, 304 if matches(entry, read.tags) else 200, entry, ())
    return True


async def send_answer(
    send: Send, status: int, entry: Entry, added: Sequence[tuple[bytes, bytes]]
) -> None:
    """Send the entry (200) or that it is unchanged (304), the `added` headers after its own."""
    etag = (b"etag", b'"%s"' % entry.composition_id.encode())
    if status == 304:  # as Litestar sends it: no body, so no length and no type
        headers = [etag, *added]
        body = b""
    else:
        body = entry.payload
        headers = [_JSON, etag, (b"content-length", b"%d" % len(body)), *added]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
