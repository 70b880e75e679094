"""What every console page shares: rendering, the role check, form fields, error pages.

Console routes are PUBLIC to the API's key check (api/auth.py) and make their own: the session
cookie (`session.signed_in`), the key's realms (a realm it cannot see is a 404, as on the API)
and its role (`require`, the API's access levels). A page shows a write control only to a
caller that may write; a write from anyone else is refused all the same.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.datastructures import State
from litestar.response import Redirect, Template

from charter.api.auth import ACCESS
from charter.api.console.session import PAGE_HEADERS, SignInNeeded
from charter.api.problems import status_for
from charter.domain.access import Access, Caller
from charter.errors import CharterError, Forbidden, InvalidRequest
from charter.services.sessions import Session

PUBLIC = {ACCESS: Access.PUBLIC}  # the session check is the console's own (see above)
PAGE_LIMIT = 500


def page(name: str, session: Session | None, status: int = 200, **context: Any) -> Template:
    context["session"] = session
    context["caller"] = session.caller if session is not None else None
    context["writer"] = session is not None and session.caller.may(Access.WRITE)
    context.setdefault("nav_realm", None)
    return Template(name, context=context, status_code=status, headers=PAGE_HEADERS)


def require(caller: Caller, access: Access, agent_id: str | None = None) -> None:
    if not caller.may(access, agent_id):
        raise Forbidden(f"a {caller.role} key may not do this")


def node_url(realm_id: str, directive_id: str) -> str:
    return f"/console/realms/{realm_id}/directives/{directive_id}"


def number(value: str | None, what: str) -> int:
    """A form or query number: plain ASCII digits, as the API reads them."""
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise InvalidRequest(f"{what} must be a number")
    return int(value)


def text(value: str | None) -> str:
    # Browsers send a textarea's line breaks as CRLF: the stored text keeps plain LF.
    return (value or "").replace("\r\n", "\n")


def _to_sign_in(_: Request[Any, Any, State], __: SignInNeeded) -> Response[Any]:
    return Redirect("/console", status_code=303)


def _error_page(_: Request[Any, Any, State], exc: CharterError) -> Response[Any]:
    title = exc.code.replace("-", " ").capitalize()
    return page(
        "error.html",
        None,
        status=status_for(exc.code),
        code=exc.code,
        detail=exc.detail,
        title=title,
    )


# Errors on console routes answer as pages (or a trip to the sign-in form), not problem JSON.
EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    SignInNeeded: _to_sign_in,
    CharterError: _error_page,
}
