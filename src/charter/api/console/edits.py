"""The console's writes: an edit with a message (and its conflict view), and rollback.

Both are compare-and-swap on the revision the page showed, through the same services as the
API's PATCH and rollback. A stale edit saves nothing and answers the node page with what
changed since that revision, and the caller's text kept for re-applying.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Redirect, Template

from charter.api import params
from charter.api.console.pages import diff_of, node_context
from charter.api.console.session import check_form, runtime_of, signed_in
from charter.api.console.views import (
    EXCEPTION_HANDLERS,
    PUBLIC,
    node_url,
    number,
    page,
    require,
    text,
)
from charter.domain.access import Access
from charter.errors import StaleRevision
from charter.services import activation, writes
from charter.services.sessions import Session
from charter.services.writes import Actor, Expected, Patch

_NODE = "/realms/{realm_id:str}/directives/{directive_id:str}"


async def writer(
    request: Request[Any, Any, State], realm_id: str, directive_id: str
) -> tuple[Session, Any]:
    """The signed-in writer and the posted form, after the CSRF and origin checks."""
    params.realm_id(realm_id)
    params.directive_id(directive_id)
    session = await signed_in(request, realm_id)
    form = await request.form()
    check_form(request, session, form.get("csrf"))
    require(session.caller, Access.WRITE)
    return session, form


class EditController(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = EXCEPTION_HANDLERS

    @post(_NODE + "/edit", opt=PUBLIC, status_code=303)
    async def edit(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
    ) -> Template | Redirect:
        session, form = await writer(request, realm_id, directive_id)
        expected = number(form.get("expected_revision"), "expected_revision")
        base = number(form.get("base_version"), "base_version")
        title, body = text(form.get("title")).strip(), text(form.get("body"))
        message = text(form.get("message")).strip() or None
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
            context = await node_context(runtime, realm_id, directive_id)
            node = context["node"]
            theirs = None
            if node.active_version is not None and base >= 1:
                theirs = await diff_of(runtime, realm_id, directive_id, base, node.active_version)
            conflict = {
                "expected": expected,
                "since": [e for e in context["history"] if e.revision > expected],
                "diff": theirs,
                "title": title,
                "body": body,
                "message": message or "",
            }
            return page(
                "node.html", session, 409, done=None, diff=None, conflict=conflict, **context
            )
        return Redirect(f"{node_url(realm_id, directive_id)}?done=saved", status_code=303)

    @post(_NODE + "/rollback", opt=PUBLIC, status_code=303)
    async def rollback(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
    ) -> Redirect:
        session, form = await writer(request, realm_id, directive_id)
        expected = number(form.get("expected_revision"), "expected_revision")
        version = number(form.get("version"), "version")
        message = text(form.get("message")).strip() or None
        runtime = runtime_of(request)
        actor = Actor(session.caller.key_id, session.caller.name)
        done = "rolled-back"
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
            done = "stale"
        return Redirect(f"{node_url(realm_id, directive_id)}?done={done}", status_code=303)
