"""The console's pages: server-rendered HTML over the same services and stores as the API.

Every route here is PUBLIC to the API's key check (api/auth.py) and does its own: the
session cookie (`session.signed_in`), the key's realms (a realm it cannot see is a 404, as on
the API) and its role (`Caller.may`, as the API's access table says). A page shows a write
control only to a caller that may write; a write from anyone else is refused all the same.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api import params
from charter.api.agents import agent_ids_valid
from charter.api.auth import ACCESS
from charter.api.console import diffs
from charter.api.console.session import (
    PAGE_HEADERS,
    SignInNeeded,
    check_form,
    cleared_cookie,
    cookie_secret,
    current,
    runtime_of,
    session_cookie,
    signed_in,
)
from charter.api.problems import status_for
from charter.cache.bus import Bus
from charter.domain.access import ALL_REALMS, Access, Caller
from charter.domain.events import EventType
from charter.errors import CharterError, Forbidden, InvalidRequest, NotFound, StaleRevision
from charter.runtime import Runtime
from charter.services import activation, prompts, reads, sessions, writes
from charter.services.sessions import Session
from charter.services.writes import Actor, Expected, Patch
from charter.store import compositions, directives, events, keys, realms, versions
from charter.store.directives import Directive

_PUBLIC = {ACCESS: Access.PUBLIC}  # the session check is the console's own (see above)
_PAGE_LIMIT = 500
_FEED_SHOWN = 50


def page(name: str, session: Session | None, status: int = 200, **context: Any) -> Template:
    context["session"] = session
    context["caller"] = session.caller if session is not None else None
    context["writer"] = session is not None and session.caller.may(Access.WRITE)
    context.setdefault("nav_realm", None)
    return Template(name, context=context, status_code=status, headers=PAGE_HEADERS)


def _realm_and_id(realm_id: FromPath[str], directive_id: FromPath[str]) -> None:
    params.realm_id(realm_id)
    params.directive_id(directive_id)


def _number(value: str | None, what: str) -> int:
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise InvalidRequest(f"{what} must be a number")
    return int(value)


def _text(value: str | None) -> str:
    # Browsers send a textarea's line breaks as CRLF: the stored text keeps plain LF.
    return (value or "").replace("\r\n", "\n")


async def _names(conn: AsyncConnection, ids: set[str]) -> dict[str, str | None]:
    return await keys.names(conn, ids)


async def _broadcast_end(runtime: Runtime, session_id: str) -> None:
    """End the session's streams here and in every process the bus reaches."""
    runtime.hub.revoke_key(session_id)
    bus: Bus = runtime.bus
    try:
        await bus.revoke_key(session_id)
    except Exception:  # the per-process re-check ends them within a second (services/keys.py)
        return


def _to_sign_in(_: Request[Any, Any, State], __: SignInNeeded) -> Response[Any]:
    return Redirect("/console", status_code=303)


def _error_page(request: Request[Any, Any, State], exc: CharterError) -> Response[Any]:
    status = status_for(exc.code)
    return page(
        "error.html",
        None,
        status=status,
        code=exc.code,
        detail=exc.detail,
        title=exc.code.replace("-", " ").capitalize(),
    )


class ConsoleController(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = {SignInNeeded: _to_sign_in, CharterError: _error_page}  # noqa: RUF012

    # --- signing in and out ---------------------------------------------------------------------

    @get("/", opt=_PUBLIC, name="console:home")
    async def home(self, request: Request[Any, Any, State]) -> Template | Redirect:
        session = await current(request)
        if session is not None:
            return Redirect("/console/realms")
        return page("signin.html", None, error=None, title="Sign in")

    @post("/sign-in", opt=_PUBLIC, status_code=303)
    async def sign_in(self, request: Request[Any, Any, State]) -> Template | Redirect:
        check_form(request, None, None)
        form = await request.form()
        secret = str(form.get("key") or "").strip()
        runtime = runtime_of(request)
        error = None
        if not secret:
            error = "Enter an API key."
        else:
            try:
                cookie, _ = await sessions.sign_in(runtime.db, runtime.keyring, secret)
            except Forbidden:
                error = "An agent key cannot sign in to the console."
            except Exception as exc:
                if getattr(exc, "code", None) != "unauthenticated":
                    raise
                error = "That key is unknown or revoked."
            else:
                redirect = Redirect("/console/realms", status_code=303)
                redirect.set_cookie(session_cookie(request, cookie))
                return redirect
        # The key is never put back into the page.
        return page(
            "signin.html", None, status=401 if secret else 400, error=error, title="Sign in"
        )

    @post("/sign-out", opt=_PUBLIC, status_code=303)
    async def sign_out(self, request: Request[Any, Any, State]) -> Redirect:
        session = await current(request)
        form = await request.form()
        check_form(request, session, form.get("csrf"))
        secret = cookie_secret(request)
        runtime = runtime_of(request)
        if secret is not None:
            ended = await sessions.sign_out(runtime.db, secret)
            if ended is not None:
                await _broadcast_end(runtime, ended)
        redirect = Redirect("/console", status_code=303)
        redirect.set_cookie(cleared_cookie(request))
        return redirect

    # --- realms and trees ------------------------------------------------------------------------

    @get("/realms", opt=_PUBLIC)
    async def realm_list(self, request: Request[Any, Any, State]) -> Template:
        session = await signed_in(request)
        caller = session.caller
        only = None if caller.sees_realm(ALL_REALMS) else caller.realms
        runtime = runtime_of(request)
        async with runtime.db.transaction() as conn:
            found = await realms.page(conn, _PAGE_LIMIT, None, only)
        return page("realms.html", session, realms=found, title="Realms")

    @get("/realms/{realm_id:str}", opt=_PUBLIC)
    async def tree(self, request: Request[Any, Any, State], realm_id: FromPath[str]) -> Template:
        params.realm_id(realm_id)
        session = await signed_in(request, realm_id)
        _require(session.caller, Access.READ)
        runtime = runtime_of(request)
        async with runtime.db.transaction(realm_id) as conn:
            realm = await realms.get(conn, realm_id)
            forest = await reads.realm_forest(conn, realm_id)
        return page(
            "tree.html",
            session,
            realm=realm,
            forest=forest,
            title=f"Realm {realm_id}",
            nav_realm=realm_id,
        )

    # --- a node ----------------------------------------------------------------------------------

    @get("/realms/{realm_id:str}/directives/{directive_id:str}", opt=_PUBLIC)
    async def node(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
        done: FromQuery[str | None] = None,
        from_version: FromQuery[str | None] = None,
        to_version: FromQuery[str | None] = None,
    ) -> Template:
        _realm_and_id(realm_id, directive_id)
        session = await signed_in(request, realm_id)
        _require(session.caller, Access.READ)
        context = await _node_context(runtime_of(request), realm_id, directive_id)
        node: Directive = context["node"]
        diff = None
        if from_version is not None or to_version is not None:
            old = _number(from_version, "from")
            new = _number(to_version, "to")
            diff = await _diff(runtime_of(request), realm_id, directive_id, old, new)
        elif node.latest_version > 1:
            diff = await _diff(
                runtime_of(request),
                realm_id,
                directive_id,
                node.latest_version - 1,
                node.latest_version,
            )
        return page("node.html", session, done=done, diff=diff, conflict=None, **context)

    @post("/realms/{realm_id:str}/directives/{directive_id:str}/edit", opt=_PUBLIC, status_code=303)
    async def edit(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
    ) -> Template | Redirect:
        _realm_and_id(realm_id, directive_id)
        session = await signed_in(request, realm_id)
        form = await request.form()
        check_form(request, session, form.get("csrf"))
        _require(session.caller, Access.WRITE)
        expected = _number(form.get("expected_revision"), "expected_revision")
        base = _number(form.get("base_version"), "base_version")
        title, body = _text(form.get("title")).strip(), _text(form.get("body"))
        message = _text(form.get("message")).strip() or None
        runtime = runtime_of(request)
        actor = Actor(session.caller.key_id, session.caller.name)
        change = Patch(title=title, body=body, message=message)
        try:
            async with runtime.write(realm_id) as conn:
                await writes.update(
                    conn,
                    realm_id,
                    actor,
                    directive_id,
                    Expected(expected, via_header=False),
                    change,
                    runtime.settings.max_depth,
                )
        except StaleRevision:
            context = await _node_context(runtime, realm_id, directive_id)
            node: Directive = context["node"]
            since = [e for e in context["history"] if e.revision > expected]
            theirs = None
            if node.active_version is not None and base >= 1:
                theirs = await _diff(runtime, realm_id, directive_id, base, node.active_version)
            conflict = {
                "expected": expected,
                "since": since,
                "diff": theirs,
                "title": title,
                "body": body,
                "message": message or "",
            }
            return page(
                "node.html", session, status=409, done=None, diff=None, conflict=conflict, **context
            )
        return Redirect(f"{_node_url(realm_id, directive_id)}?done=saved", status_code=303)

    @post(
        "/realms/{realm_id:str}/directives/{directive_id:str}/rollback",
        opt=_PUBLIC,
        status_code=303,
    )
    async def rollback(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
    ) -> Template | Redirect:
        _realm_and_id(realm_id, directive_id)
        session = await signed_in(request, realm_id)
        form = await request.form()
        check_form(request, session, form.get("csrf"))
        _require(session.caller, Access.WRITE)
        expected = _number(form.get("expected_revision"), "expected_revision")
        version = _number(form.get("version"), "version")
        message = _text(form.get("message")).strip() or None
        runtime = runtime_of(request)
        actor = Actor(session.caller.key_id, session.caller.name)
        try:
            async with runtime.write(realm_id) as conn:
                await activation.rollback(
                    conn,
                    realm_id,
                    actor,
                    directive_id,
                    Expected(expected, via_header=False),
                    version,
                    message,
                )
        except StaleRevision:
            return Redirect(f"{_node_url(realm_id, directive_id)}?done=stale", status_code=303)
        return Redirect(f"{_node_url(realm_id, directive_id)}?done=rolled-back", status_code=303)

    # --- agents, compositions, events ------------------------------------------------------------

    @get("/realms/{realm_id:str}/agents", opt=_PUBLIC)
    async def agents(self, request: Request[Any, Any, State], realm_id: FromPath[str]) -> Template:
        params.realm_id(realm_id)
        session = await signed_in(request, realm_id)
        _require(session.caller, Access.READ)
        runtime = runtime_of(request)
        async with runtime.db.transaction(realm_id) as conn:
            realm = await realms.get(conn, realm_id)
            found = await compositions.agents(conn, realm_id, _PAGE_LIMIT, None)
        return page(
            "agents.html", session, realm=realm, agents=found, title="Agents", nav_realm=realm_id
        )

    @get("/realms/{realm_id:str}/agents/{agent_id:str}", opt=_PUBLIC)
    async def agent(
        self, request: Request[Any, Any, State], realm_id: FromPath[str], agent_id: FromPath[str]
    ) -> Template:
        params.realm_id(realm_id)
        session = await signed_in(request, realm_id)
        _require(session.caller, Access.PROMPT, agent_id)
        runtime = runtime_of(request)
        if not agent_ids_valid(realm_id, agent_id):
            raise InvalidRequest("agent ids match [A-Za-z0-9._:@-]{1,128}")
        document = prompts.decode(await runtime.prompts.current(realm_id, agent_id))
        return page(
            "agent.html",
            session,
            realm_id=realm_id,
            agent_id=agent_id,
            prompt=document,
            title=f"Agent {agent_id}",
            nav_realm=realm_id,
        )

    @get("/realms/{realm_id:str}/compositions", opt=_PUBLIC)
    async def composition(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        composition_id: FromQuery[str | None] = None,
    ) -> Template:
        params.realm_id(realm_id)
        session = await signed_in(request, realm_id)
        _require(session.caller, Access.READ)
        runtime = runtime_of(request)
        found = None
        error = None
        if composition_id:
            composition_id = composition_id.strip()
            if not composition_id.startswith("cmp_") or len(composition_id) != 68:
                error = "Composition ids look like cmp_ followed by 64 hex digits."
            else:
                try:
                    found = await runtime.prompts.resolve(realm_id, composition_id, None)
                except NotFound:
                    error = "No composition has that id in this realm."
        status = 404 if error and composition_id and found is None and "No" in error else 200
        if error and status == 200 and composition_id:
            status = 400
        return page(
            "composition.html",
            session,
            status=status,
            realm_id=realm_id,
            found=found,
            error=error,
            asked=composition_id or "",
            title="Look up a composition",
            nav_realm=realm_id,
        )

    @get("/realms/{realm_id:str}/events", opt=_PUBLIC)
    async def feed(self, request: Request[Any, Any, State], realm_id: FromPath[str]) -> Template:
        params.realm_id(realm_id)
        session = await signed_in(request, realm_id)
        _require(session.caller, Access.READ)
        runtime = runtime_of(request)
        async with runtime.db.transaction(realm_id) as conn:
            realm = await realms.get(conn, realm_id)
            shown = await events.feed(
                conn, realm_id, max(0, realm.revision - _FEED_SHOWN), _FEED_SHOWN
            )
            names = await _names(conn, {e.actor for e in shown})
        return page(
            "events.html",
            session,
            realm=realm,
            events=list(reversed(shown)),
            names=names,
            types=[t.value for t in EventType],
            title="Events",
            nav_realm=realm_id,
        )


def _require(caller: Caller, access: Access, agent_id: str | None = None) -> None:
    if not caller.may(access, agent_id):
        raise Forbidden(f"a {caller.role} key may not do this")


def _node_url(realm_id: FromPath[str], directive_id: FromPath[str]) -> str:
    return f"/console/realms/{realm_id}/directives/{directive_id}"


async def _node_context(
    runtime: Runtime, realm_id: FromPath[str], directive_id: FromPath[str]
) -> dict[str, Any]:
    async with runtime.db.transaction(realm_id) as conn:
        node = await directives.get(conn, realm_id, directive_id)
        chain = await directives.ancestry(conn, realm_id, directive_id)
        listed = await versions.page(conn, realm_id, directive_id, _PAGE_LIMIT, None)
        history = await events.history(conn, realm_id, directive_id, _PAGE_LIMIT, None)
        names = await _names(conn, {v.author for v in listed} | {e.actor for e in history})
    return {
        "realm_id": realm_id,
        "node": node,
        "ancestry": list(reversed(chain[1:])),
        "versions": listed,
        "history": history,
        "names": names,
        "title": node.title,
        "nav_realm": realm_id,
    }


async def _diff(
    runtime: Runtime, realm_id: FromPath[str], directive_id: FromPath[str], old: int, new: int
) -> dict[str, Any]:
    async with runtime.db.transaction(realm_id) as conn:
        left = await versions.get(conn, realm_id, directive_id, old)
        right = await versions.get(conn, realm_id, directive_id, new)
    rows = diffs.side_by_side(
        diffs.lines(left.title, left.body), diffs.lines(right.title, right.body)
    )
    return {"from": old, "to": new, "rows": rows}
