"""Authentication and authorisation: one check, and every route declares its access.

Order of refusals: no or unknown key → 401; a realm outside the key's realms → 404 (a key
never learns that another tenant's realm exists); a role without the right → 403.

The key comes from `Authorization: Bearer`, or, for GET requests only, from a console
session cookie (services/sessions.py): that is what lets a browser's own EventSource follow
the prompt and event streams. A cookie never authorises a write, so the API needs no CSRF
token; the console's own forms carry one (ADR 0011).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar.enums import HttpMethod, ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from charter.cache.watch import Ending, Watch
from charter.domain.access import Access, Caller
from charter.errors import Forbidden, NotFound, RateLimited, Unauthenticated
from charter.runtime import Runtime
from charter.services import sessions

ACCESS = "access"
# A route whose answer stays open (a stream): it is held under the caller's key for as long
# as it runs, counted against the key's cap and ended by its revocation (cache/holds.py).
HELD = "held"
# A route whose access drops to PUBLIC while the named boolean setting is on (/metrics).
PUBLIC_BY_SETTING = "public_by_setting"


def route_access(handler: BaseRouteHandler) -> Access:
    access = handler.opt.get(ACCESS)
    if access is None and _is_automatic_options(handler):
        return Access.PUBLIC  # Litestar's own OPTIONS answer: an Allow header, no data
    if not isinstance(access, Access):
        # A route without a declared access is a programming error, refused loudly.
        raise RuntimeError(f"route {handler.handler_name} declares no access")
    return access


def _is_automatic_options(handler: BaseRouteHandler) -> bool:
    return isinstance(handler, HTTPRouteHandler) and handler.http_methods == {HttpMethod.OPTIONS}


async def authorize(scope: Scope, handler: BaseRouteHandler) -> None:
    """Check the request's key against the route's access; leave the caller in the scope.

    Reads the raw ASGI scope: this runs on every request, the cached prompt read included.
    """
    access = route_access(handler)
    if access is Access.PUBLIC:
        return
    runtime: Runtime = scope["litestar_app"].state.runtime
    opened_by = handler.opt.get(PUBLIC_BY_SETTING)
    if opened_by is not None and getattr(runtime.settings, opened_by) is True:
        return
    header = cookie = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value.decode("latin-1")
            break
        if name == b"cookie":
            cookie = value.decode("latin-1")
    method = scope.get("method")  # an HTTP scope: the middleware runs this for no other
    if header is None and cookie is not None and method in ("GET", "HEAD"):
        session = await _session(runtime, cookie)
        caller = session.caller
        scope.setdefault("state", {})["session"] = session.id
    else:
        caller = await _authenticate(runtime, header)
    path_params = scope["path_params"]
    realm_id = path_params.get("realm_id")
    if isinstance(realm_id, str) and not caller.sees_realm(realm_id):
        raise NotFound(f"realm {realm_id!r} not found")
    agent_id = path_params.get("agent_id")
    if not caller.may(access, agent_id if isinstance(agent_id, str) else None):
        article = "an" if caller.role[:1] in "aeiou" else "a"
        raise Forbidden(f"{article} {caller.role} key may not do this")
    wait = runtime.limiter.take(caller.key_id)
    if wait:
        runtime.metrics.rejected("rate_limit")
        raise RateLimited(wait)
    scope.setdefault("state", {})["caller"] = caller


def session_of(state: Mapping[str, Any]) -> str | None:
    """The console session whose cookie authorised the request, if one did: a stream or long
    poll is held under it as well as under its key, so that the session's end ends it."""
    session: str | None = state.get("session")
    return session


def refuse_ended(watch: Watch) -> None:
    """A held request whose credential ended while it waited: 401, as its next request is."""
    if watch.ended is Ending.REVOKED:
        raise Unauthenticated("the key was revoked")
    if watch.ended is Ending.SESSION_ENDED:
        raise Unauthenticated("the console session ended: sign in again")


async def _authenticate(runtime: Runtime, header: str | None) -> Caller:
    if not header:
        raise Unauthenticated("send Authorization: Bearer <key>")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("send Authorization: Bearer <key>")
    caller = await runtime.keyring.authenticate(secret.strip())
    if caller is None:
        raise Unauthenticated("the key is unknown or revoked")
    return caller


def session_cookie(cookie_header: str) -> str | None:
    """The console session's secret from a Cookie header, if it holds one."""
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == sessions.COOKIE and value:
            return value
    return None


async def _session(runtime: Runtime, cookie_header: str) -> sessions.Session:
    secret = session_cookie(cookie_header)
    found = None
    if secret is not None:
        found = await sessions.find(runtime.db, runtime.settings.bootstrap_key, secret)
    if found is None:
        raise Unauthenticated("send Authorization: Bearer <key>, or sign in to the console")
    return found


class AuthorizeMiddleware:
    """Runs `authorize` on every routed HTTP request.

    A middleware rather than a Litestar guard: guards are handed a copy of the route handler on
    every call, a measurable cost on the hot prompt path (docs/benchmarks.md).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            handler = scope["route_handler"]
            await authorize(scope, handler)
            if handler.opt.get(HELD):
                state = scope["state"]
                runtime: Runtime = scope["litestar_app"].state.runtime
                # The whole response is sent inside this block, so the hold lasts as long as
                # the stream, and ends however the stream does.
                key_id, session_id = state["caller"].key_id, state.get("session")
                with runtime.hub.holds.hold(key_id, session_id) as watch:
                    state["hold"] = watch
                    await self.app(scope, receive, send)
                return
        await self.app(scope, receive, send)
