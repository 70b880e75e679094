"""The console's side of a session: the cookie, the CSRF check, and who is signed in."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import Cookie

from charter.errors import Forbidden, NotFound
from charter.runtime import Runtime
from charter.services import sessions
from charter.services.sessions import COOKIE, LIFETIME, Session

# Console pages: their own scripts and styles only, never framed, forms posting to themselves.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# `same-origin`, not the API's `no-referrer`: under `no-referrer` a browser sends its form
# posts with `Origin: null`, and the origin check below could not tell ours from a forgery.
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}


class SignInNeeded(Exception):
    """No live session: the page sends the browser to the sign-in form."""


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def cookie_secret(request: Request[Any, Any, Any]) -> str | None:
    return request.cookies.get(COOKIE) or None


async def current(request: Request[Any, Any, Any]) -> Session | None:
    secret = cookie_secret(request)
    if secret is None:
        return None
    runtime = runtime_of(request)
    return await sessions.find(runtime.db, runtime.settings.bootstrap_key, secret)


async def signed_in(request: Request[Any, Any, Any], realm_id: str | None = None) -> Session:
    """The live session, else SignInNeeded; a realm outside its key's realms is a 404."""
    session = await current(request)
    if session is None:
        raise SignInNeeded("sign in to continue")
    if realm_id is not None and not session.caller.sees_realm(realm_id):
        raise NotFound(f"realm {realm_id!r} not found")
    return session


def over_tls(request: Request[Any, Any, Any]) -> bool:
    """Whether the browser reached us over TLS (directly, or through a proxy that says so)."""
    if request.scope.get("scheme") == "https":
        return True
    forwarded = request.headers.get("x-forwarded-proto", "")
    return forwarded.split(",")[0].strip().lower() == "https"


def session_cookie(request: Request[Any, Any, Any], secret: str) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=secret,
        path="/",
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=over_tls(request),
    )


def cleared_cookie(request: Request[Any, Any, Any]) -> Cookie:
    return Cookie(
        key=COOKIE,
        value="",
        path="/",
        max_age=0,
        httponly=True,
        samesite="strict",
        secure=over_tls(request),
    )


def same_origin(request: Request[Any, Any, Any]) -> bool:
    """A form post from one of our own pages: its Origin (browsers send it) is our own."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site post: those always say where they come from
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def check_form(request: Request[Any, Any, Any], session: Session | None, token: str | None) -> None:
    """Every console write: our own origin, and (signed in) the session's CSRF token."""
    if not same_origin(request):
        raise Forbidden("this form was posted from another origin")
    if session is not None and not session.csrf_ok(token):
        raise Forbidden("the form's CSRF token does not match the session: reload the page")
