"""Schedules: a CAS write on a directive, made at a given time by whichever process is first.

Creating one leaves a timer (store/timers.py); the due-work loop runs it once, in the same
transaction that marks it done or failed (ADR 0008). Each action kind is one entry of
`ACTIONS`. Nothing here commits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.domain.events import EventType
from charter.domain.tree import Status
from charter.domain.work import ActionKind, ScheduleState, action_kind, schedule_actor
from charter.errors import CharterError, InvalidTransition
from charter.ids import new_id
from charter.services import activation, rollouts, writes
from charter.services.writes import Actor, Expected, Patch
from charter.store import directives, events, realms, schedules, timers
from charter.store.events import NewEvent
from charter.store.schedules import Schedule
from charter.store.timers import Timer

log = logging.getLogger("charter.schedules")

# What an action does: an ordinary CAS write, as the schedule's actor, at the revision the
# schedule expects (or the current one).
Action = Callable[[AsyncConnection, str, Actor, Schedule, Expected, int], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class NewSchedule:
    at: datetime
    action: dict[str, Any]
    expected_revision: int | None = None


async def _activate(
    conn: AsyncConnection, realm_id: str, actor: Actor, sch: Schedule, at: Expected, _: int
) -> object:
    version = sch.action[ActionKind.ACTIVATE]
    return await activation.rollback(conn, realm_id, actor, sch.directive_id, at, version, None)


async def _status(
    conn: AsyncConnection, realm_id: str, actor: Actor, sch: Schedule, at: Expected, depth: int
) -> object:
    change = Patch(status=Status(sch.action[ActionKind.STATUS]))
    return await writes.update(conn, realm_id, actor, sch.directive_id, at, change, depth)


async def _rollout(
    conn: AsyncConnection, realm_id: str, actor: Actor, sch: Schedule, at: Expected, _: int
) -> object:
    percent = sch.action[ActionKind.ROLLOUT]["percent"]
    return await rollouts.set_percent(conn, realm_id, actor, sch.directive_id, at, percent)


async def _promote(
    conn: AsyncConnection, realm_id: str, actor: Actor, sch: Schedule, at: Expected, _: int
) -> object:
    return await rollouts.promote(conn, realm_id, actor, sch.directive_id, at)


# One entry per action kind; None would fail the schedule with reason `unsupported`.
ACTIONS: dict[ActionKind, Action | None] = {
    ActionKind.ACTIVATE: _activate,
    ActionKind.STATUS: _status,
    ActionKind.ROLLOUT: _rollout,
    ActionKind.PROMOTE: _promote,
}
UNSUPPORTED = "unsupported"
STALE = "stale-revision"


async def create(
    conn: AsyncConnection, realm_id: str, actor: Actor, directive_id: str, new: NewSchedule
) -> Schedule:
    kind = action_kind(new.action)
    now = await realms.lock(conn, realm_id)
    current = await directives.get(conn, realm_id, directive_id)
    schedule_id = new_id("sch")
    await schedules.add(
        conn,
        realm_id,
        {
            "id": schedule_id,
            "directive_id": directive_id,
            "at": new.at,
            "action": new.action,
            "expected_revision": new.expected_revision,
            "creator": actor.key_id,
            "created_at": now,
        },
    )
    await timers.add(conn, realm_id, Timer(schedule_id, timers.SCHEDULE, new.at))
    payload = {"schedule_id": schedule_id, "at": new.at.isoformat(), "action": kind.value}
    await _record(conn, realm_id, EventType.SCHEDULE_CREATED, current, actor.key_id, payload)
    return await schedules.get(conn, realm_id, schedule_id)


async def cancel(
    conn: AsyncConnection, realm_id: str, actor: Actor, directive_id: str, schedule_id: str
) -> Schedule:
    now = await realms.lock(conn, realm_id)
    found = await schedules.get(conn, realm_id, schedule_id, directive_id)
    ended = await schedules.finish(conn, realm_id, schedule_id, ScheduleState.CANCELLED, now)
    if ended is None:
        raise InvalidTransition(f"the schedule is {found.state}; only a pending one is cancelled")
    await timers.remove(conn, realm_id, schedule_id)
    current = await directives.get(conn, realm_id, directive_id)
    payload = {"schedule_id": schedule_id}
    await _record(conn, realm_id, EventType.SCHEDULE_CANCELLED, current, actor.key_id, payload)
    return ended


def runner(
    max_depth: int,
) -> Callable[[AsyncConnection, str, str, datetime], Awaitable[datetime | None]]:
    """The due-work handler for schedule timers."""

    async def run_schedule(
        conn: AsyncConnection, realm_id: str, schedule_id: str, now: datetime
    ) -> datetime | None:
        await run(conn, realm_id, schedule_id, now, max_depth)
        return None  # run or not, the timer's work is over

    return run_schedule


async def run(
    conn: AsyncConnection, realm_id: str, schedule_id: str, now: datetime, max_depth: int
) -> None:
    """Run a due schedule once (needs the realm lock): done, or failed with its reason."""
    found = await schedules.get(conn, realm_id, schedule_id)
    if found.state != ScheduleState.PENDING:
        return
    current = await directives.get(conn, realm_id, found.directive_id)
    actor = Actor(key_id=schedule_actor(schedule_id))
    action = ACTIONS[action_kind(found.action)]
    if found.expected_revision is not None and current.revision != found.expected_revision:
        await _fail(conn, realm_id, found, STALE, now)
        return
    if action is None:
        await _fail(conn, realm_id, found, UNSUPPORTED, now)
        return
    expected = Expected(found.expected_revision or current.revision, via_header=False)
    try:
        # A refused write leaves nothing behind but the schedule's failure.
        async with conn.begin_nested():
            await action(conn, realm_id, actor, found, expected, max_depth)
    except CharterError as exc:
        await _fail(conn, realm_id, found, exc.code, now)
        return
    except Exception as exc:  # never retried forever: the schedule fails, the loop goes on
        log.error("schedule %s failed: %s", schedule_id, type(exc).__name__)
        await _fail(conn, realm_id, found, "internal", now)
        return
    await schedules.finish(conn, realm_id, schedule_id, ScheduleState.DONE, now)


async def _fail(
    conn: AsyncConnection, realm_id: str, found: Schedule, reason: str, now: datetime
) -> None:
    await schedules.finish(conn, realm_id, found.id, ScheduleState.FAILED, now, reason)
    current = await directives.get(conn, realm_id, found.directive_id)
    payload = {"schedule_id": found.id, "reason": reason}
    await _record(
        conn, realm_id, EventType.SCHEDULE_FAILED, current, schedule_actor(found.id), payload
    )


async def _record(
    conn: AsyncConnection,
    realm_id: str,
    kind: EventType,
    node: directives.Directive,
    actor: str,
    payload: dict[str, Any],
) -> None:
    now = await realms.lock(conn, realm_id)
    event = NewEvent(
        type=kind,
        directive_id=node.id,
        revision=node.revision,
        version=node.active_version,
        actor=actor,
        occurred_at=now,
        payload=payload,
    )
    await events.append(conn, realm_id, [event])
