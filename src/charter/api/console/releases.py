"""The node page's release controls: a rollout (start, change the percent, promote, abort)
and schedules (add, cancel).

Each is a compare-and-swap on the revision the page showed (a schedule's is optional, as on
the API), through the same services as the API's rollout and schedule routes. A stale form
changes nothing and says so on the node page.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api.console.edits import writer
from charter.api.console.session import runtime_of
from charter.api.console.views import EXCEPTION_HANDLERS, PUBLIC, node_url, number, text
from charter.domain.work import action_kind
from charter.errors import InvalidRequest, StaleRevision
from charter.ids import SUFFIX
from charter.services import rollouts
from charter.services import schedules as timed
from charter.services.rollouts import RolloutChange
from charter.services.schedules import NewSchedule
from charter.services.sessions import Session
from charter.services.writes import Actor, Expected

_NODE = "/realms/{realm_id:str}/directives/{directive_id:str}"
_PERCENT = re.compile(r"[0-9]{1,3}(\.[0-9]{1,2})?")
_SCHEDULE_ID = re.compile(f"sch_{SUFFIX}")
_AT_MAX = 40


def percent(value: str | None) -> float:
    """A form's percent: 0 to 100, at most two decimals (the API's rule, read from text)."""
    given = (value or "").strip()
    if _PERCENT.fullmatch(given) is None:
        raise InvalidRequest("percent must be a number from 0 to 100, with at most two decimals")
    found = float(given)
    if not (math.isfinite(found) and 0 <= found <= 100):
        raise InvalidRequest("percent must be between 0 and 100")
    return found


def instant(value: str | None) -> datetime:
    """A form's time: ISO 8601 (a `datetime-local` field's value is read as UTC)."""
    given = (value or "").strip()
    if not given or len(given) > _AT_MAX or not given.isascii():
        raise InvalidRequest("at must be a date and time, e.g. 2030-01-31T09:00")
    try:
        found = datetime.fromisoformat(given)
    except ValueError:
        raise InvalidRequest("at must be a date and time, e.g. 2030-01-31T09:00") from None
    try:  # an offset can push the first or last representable day out of range
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
    except OverflowError:
        raise InvalidRequest("at is out of range") from None


def action(kind: str | None, value: str | None) -> dict[str, Any]:
    """A schedule's action from the form's kind and value, checked as the API checks it."""
    given = (value or "").strip()
    made: dict[str, Any]
    if kind == "activate":
        made = {"activate": number(given, "the version to activate")}
    elif kind == "status":
        made = {"status": given}
    elif kind == "rollout":
        made = {"rollout": {"percent": percent(given)}}
    elif kind == "promote":
        made = {"promote": True}
    else:
        raise InvalidRequest("the action is one of activate, status, rollout, promote")
    action_kind(made)
    return made


def _actor(session: Session) -> Actor:
    return Actor(session.caller.key_id, session.caller.name)


def _done(realm_id: str, directive_id: str, done: str) -> Redirect:
    return Redirect(f"{node_url(realm_id, directive_id)}?done={done}#releases-h", status_code=303)


async def _cas(
    request: Request[Any, Any, State],
    realm_id: str,
    directive_id: str,
    done: str,
    change: Any,
) -> Redirect:
    """Run `change(conn, actor, expected, form)` as a CAS on the posted revision."""
    session, form = await writer(request, realm_id, directive_id)
    expected = Expected(number(form.get("expected_revision"), "expected_revision"), False)
    message = text(form.get("message")).strip() or None
    try:
        async with runtime_of(request).write(realm_id) as conn:
            await change(conn, _actor(session), expected, form, message)
    except StaleRevision:
        done = "stale-release"
    return _done(realm_id, directive_id, done)


class ReleaseController(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = EXCEPTION_HANDLERS

    @post(_NODE + "/rollout", opt=PUBLIC, status_code=303)
    async def start(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
    ) -> Redirect:
        async def run(
            conn: AsyncConnection, actor: Actor, expected: Expected, form: Any, message: str | None
        ) -> None:
            version = number(form.get("version"), "version")
            change = RolloutChange(version, percent(form.get("percent")), message=message)
            await rollouts.put(conn, realm_id, actor, directive_id, expected, change)

        return await _cas(request, realm_id, directive_id, "rollout-started", run)

    @post(_NODE + "/rollout/percent", opt=PUBLIC, status_code=303)
    async def change_percent(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
    ) -> Redirect:
        async def run(
            conn: AsyncConnection, actor: Actor, expected: Expected, form: Any, message: str | None
        ) -> None:
            given = percent(form.get("percent"))
            await rollouts.set_percent(
                conn, realm_id, actor, directive_id, expected, given, message
            )

        return await _cas(request, realm_id, directive_id, "percent-changed", run)

    @post(_NODE + "/rollout/promote", opt=PUBLIC, status_code=303)
    async def promote(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
    ) -> Redirect:
        async def run(
            conn: AsyncConnection, actor: Actor, expected: Expected, _: Any, message: str | None
        ) -> None:
            await rollouts.promote(conn, realm_id, actor, directive_id, expected, message)

        return await _cas(request, realm_id, directive_id, "promoted", run)

    @post(_NODE + "/rollout/abort", opt=PUBLIC, status_code=303)
    async def abort(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
    ) -> Redirect:
        async def run(
            conn: AsyncConnection, actor: Actor, expected: Expected, _: Any, message: str | None
        ) -> None:
            await rollouts.abort(conn, realm_id, actor, directive_id, expected, message)

        return await _cas(request, realm_id, directive_id, "aborted", run)

    @post(_NODE + "/schedules", opt=PUBLIC, status_code=303)
    async def add_schedule(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
    ) -> Redirect:
        session, form = await writer(request, realm_id, directive_id)
        at = instant(form.get("at"))
        made = action(form.get("action"), form.get("value"))
        expected = None
        if form.get("only_if_unchanged") is not None:
            expected = number(form.get("expected_revision"), "expected_revision")
            if expected < 1:
                raise InvalidRequest("expected_revision must be at least 1")
        async with runtime_of(request).write(realm_id) as conn:
            new = NewSchedule(at, made, expected)
            await timed.create(conn, realm_id, _actor(session), directive_id, new)
        return _done(realm_id, directive_id, "scheduled")

    @post(_NODE + "/schedules/{schedule_id:str}/cancel", opt=PUBLIC, status_code=303)
    async def cancel_schedule(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
        schedule_id: FromPath[str],
    ) -> Redirect:
        session, _ = await writer(request, realm_id, directive_id)
        if _SCHEDULE_ID.fullmatch(schedule_id) is None:
            raise InvalidRequest("schedule ids look like sch_ followed by 26 characters")
        async with runtime_of(request).write(realm_id) as conn:
            await timed.cancel(conn, realm_id, _actor(session), directive_id, schedule_id)
        return _done(realm_id, directive_id, "schedule-cancelled")
