"""Signing in to the console with a key, and out again (services/sessions.py, ADR 0011)."""

from __future__ import annotations

import math
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.response import Redirect, Template

from charter.api.console.session import (
    check_form,
    cleared_cookie,
    cookie_secret,
    current,
    runtime_of,
    session_cookie,
)
from charter.api.console.views import EXCEPTION_HANDLERS, PUBLIC, page
from charter.errors import Forbidden, Unauthenticated
from charter.runtime import Runtime
from charter.services import sessions


async def _end_streams(runtime: Runtime, session_id: str) -> None:
    """End the session's streams here and in every process the bus reaches."""
    runtime.hub.revoke_key(session_id)
    try:
        await runtime.bus.revoke_key(session_id)
    except Exception:  # the per-process re-check ends them within a second (services/keys.py)
        return


def _too_many(wait: float) -> Template:
    seconds = math.ceil(wait)
    error = (
        f"Too many failed sign-ins from this address. Wait {seconds} s and try again: "
        "until then no key is accepted here, even a right one."
    )
    answer = page("signin.html", None, 429, error=error, title="Sign in")
    answer.set_header("Retry-After", str(seconds))
    return answer


class SignInController(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = EXCEPTION_HANDLERS

    @get("/", opt=PUBLIC)
    async def home(self, request: Request[Any, Any, State]) -> Template | Redirect:
        if await current(request) is not None:
            return Redirect("/console/realms")
        return page("signin.html", None, error=None, title="Sign in")

    @post("/sign-in", opt=PUBLIC, status_code=303)
    async def sign_in(self, request: Request[Any, Any, State]) -> Template | Redirect:
        check_form(request, None, None)
        form = await request.form()
        secret = str(form.get("key") or "").strip()
        runtime = runtime_of(request)
        client = request.client.host if request.client is not None else ""
        wait = runtime.sign_ins.wait(client)
        if wait:
            # Checked before the key: past the limit a right key is refused too, so that
            # guessing gains nothing until the window passes.
            runtime.metrics.rejected("sign_in_limit")
            return _too_many(wait)
        if not secret:
            return page("signin.html", None, 400, error="Enter an API key.", title="Sign in")
        # Counted as a guess before the key is checked (an await): guesses sent at once are
        # all counted, and past the limit refused, before any of them is checked.
        guess = runtime.sign_ins.failed(client)
        try:
            cookie, _ = await sessions.sign_in(runtime.db, runtime.keyring, secret)
        except (Forbidden, Unauthenticated) as exc:
            if isinstance(exc, Forbidden):
                runtime.sign_ins.forgive(client, guess)  # an agent key is no guess
                error = "An agent key cannot sign in to the console."
            else:
                error = "That key is unknown or revoked."
            # The key is never put back into the page.
            return page("signin.html", None, 401, error=error, title="Sign in")
        except BaseException:
            runtime.sign_ins.forgive(client, guess)  # not checked: the database failed
            raise
        runtime.sign_ins.forgive(client, guess)
        redirect = Redirect("/console/realms", status_code=303)
        redirect.set_cookie(session_cookie(request, cookie))
        return redirect

    @post("/sign-out", opt=PUBLIC, status_code=303)
    async def sign_out(self, request: Request[Any, Any, State]) -> Redirect:
        session = await current(request)
        form = await request.form()
        check_form(request, session, form.get("csrf"))
        secret = cookie_secret(request)
        runtime = runtime_of(request)
        if secret is not None:
            ended = await sessions.sign_out(runtime.db, secret)
            if ended is not None:
                await _end_streams(runtime, ended)
        redirect = Redirect("/console", status_code=303)
        redirect.set_cookie(cleared_cookie(request))
        return redirect
