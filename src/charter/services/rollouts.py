"""Rollout writes: start or change, promote, abort (DESIGN §8).

Each is one CAS write of the directive row (its `rollout` column, and on promote its active
version) with the caller's expected revision, and one event whose affected agents are exactly
those whose visible version of the directive changed. Nothing here commits.

These are the functions schedules call too (`set_percent`, `promote`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import null
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.domain.events import EventType
from charter.domain.rollouts import Guard, Rollout, basis_points, visible_version
from charter.domain.versions import Content
from charter.errors import InvalidRequest, NotFound, RolloutInProgress
from charter.ids import new_id
from charter.services.writes import Actor, Expected, Outcome, read_for_write, swap_revision
from charter.store import directives, events, versions
from charter.store.directives import Directive
from charter.store.events import NewEvent


@dataclass(frozen=True, slots=True)
class RolloutChange:
    """PUT …/rollout: the candidate version, its percent, pinned agents and guard."""

    version: int
    percent: float
    agents: frozenset[str] = frozenset()
    guard: Guard | None = None
    message: str | None = None


async def put(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    directive_id: str,
    expected: Expected,
    change: RolloutChange,
) -> Outcome:
    """Start a rollout of `change.version`, or change the running one's percent, pinned
    agents or guard (its id, so every agent's bucket, stays)."""
    points = basis_points(change.percent)
    current, now = await read_for_write(conn, realm_id, directive_id, expected)
    await versions.get(conn, realm_id, directive_id, change.version)  # 404 if never made
    running = current.rollout
    if running is None:
        if current.active_version is None:
            raise InvalidRequest("a deactivated directive has no control version to roll from")
        if change.version == current.active_version:
            raise InvalidRequest(f"version {change.version} is already the active one")
        after = Rollout(
            id=new_id("rol"),
            version=change.version,
            percent_bp=points,
            agents=change.agents,
            guard=change.guard,
            started_at=now,
        )
        kind = EventType.ROLLOUT_STARTED
    else:
        if change.version != running.version:
            raise RolloutInProgress(
                f"rollout {running.id} of version {running.version} is running: promote or "
                "abort it first"
            )
        after = replace(running, percent_bp=points, agents=change.agents, guard=change.guard)
        if after == running:
            return Outcome(current, changed=False)
        kind = EventType.ROLLOUT_CHANGED
    payload: dict[str, Any] = {
        "rollout_id": after.id,
        "version": after.version,
        "percent": after.percent,
        "pinned": len(after.agents),
        "guarded": after.guard is not None,
    }
    if running is not None:
        payload["from_percent"] = running.percent
    written = await _write(
        conn, current, expected, {"rollout": after.to_json()}, now, current.active_version
    )
    await _event(conn, current, written, kind, actor, now, change.message, payload, running, after)
    return Outcome(written, changed=True)


async def set_percent(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    directive_id: str,
    expected: Expected,
    percent: float,
    message: str | None = None,
) -> Outcome:
    """Change only the running rollout's percent (a schedule's `{"rollout": {"percent"}}`)."""
    current = await directives.get(conn, realm_id, directive_id)
    if current.rollout is None:
        raise NotFound(f"directive {directive_id!r} has no running rollout")
    rollout = current.rollout
    change = RolloutChange(rollout.version, percent, rollout.agents, rollout.guard, message)
    return await put(conn, realm_id, actor, directive_id, expected, change)


async def promote(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    directive_id: str,
    expected: Expected,
    message: str | None = None,
) -> Outcome:
    """Make the candidate the active version and end the rollout."""
    current, now = await read_for_write(conn, realm_id, directive_id, expected)
    running = _running(current)
    values = {"rollout": null(), "active_version": running.version}
    written = await _write(conn, current, expected, values, now, running.version)
    payload = {
        "rollout_id": running.id,
        "from_version": current.active_version,
        "to_version": running.version,
    }
    await _event(
        conn,
        current,
        written,
        EventType.ROLLOUT_PROMOTED,
        actor,
        now,
        message,
        payload,
        running,
        None,
    )
    return Outcome(written, changed=True)


async def abort(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    directive_id: str,
    expected: Expected,
    message: str | None = None,
    reason: str = "operator",
) -> Outcome:
    """End the rollout: every agent sees the active version again."""
    current, now = await read_for_write(conn, realm_id, directive_id, expected)
    running = _running(current)
    written = await _write(
        conn, current, expected, {"rollout": null()}, now, current.active_version
    )
    payload = {"rollout_id": running.id, "version": running.version, "reason": reason}
    await _event(
        conn,
        current,
        written,
        EventType.ROLLOUT_ABORTED,
        actor,
        now,
        message,
        payload,
        running,
        None,
    )
    return Outcome(written, changed=True)


def aborted_by_deactivation(
    current: Directive, revision: int, actor: Actor, now: datetime
) -> list[NewEvent]:
    """The abort event a deactivation writes when a rollout runs (the row's `rollout` is
    cleared by the deactivation's own CAS; the deactivation's event tells every agent)."""
    if current.rollout is None:
        return []
    return [
        NewEvent(
            type=EventType.ROLLOUT_ABORTED,
            directive_id=current.id,
            revision=revision,
            version=None,
            actor=actor.key_id,
            occurred_at=now,
            affected_agents=[],
            payload={
                "rollout_id": current.rollout.id,
                "version": current.rollout.version,
                "reason": "deactivated",
            },
            message=None,
        )
    ]


def _running(current: Directive) -> Rollout:
    if current.rollout is None:
        raise NotFound(f"directive {current.id!r} has no running rollout")
    return current.rollout


async def _write(
    conn: AsyncConnection,
    current: Directive,
    expected: Expected,
    values: dict[str, Any],
    now: datetime,
    active_after: int | None,
) -> Directive:
    """The CAS write; the answer shows the active version's text after it."""
    content = Content(current.title, current.body)
    if active_after is not None and active_after != current.active_version:
        content = (await versions.get(conn, current.realm_id, current.id, active_after)).content
    return await swap_revision(conn, current, expected, {**values, "updated_at": now}, content)


async def _event(
    conn: AsyncConnection,
    before: Directive,
    written: Directive,
    kind: EventType,
    actor: Actor,
    now: datetime,
    message: str | None,
    payload: dict[str, Any],
    rollout_before: Rollout | None,
    rollout_after: Rollout | None,
) -> None:
    owners = directives.owners(await directives.subtree(conn, before.realm_id, before.id))
    affected = sorted(
        agent
        for agent in owners
        if visible_version(rollout_before, before.id, before.active_version, agent)[0]
        != visible_version(rollout_after, before.id, written.active_version, agent)[0]
    )
    event = NewEvent(
        type=kind,
        directive_id=before.id,
        revision=written.revision,
        version=written.active_version,
        actor=actor.key_id,
        occurred_at=now,
        affected_agents=affected,
        payload=payload,
        message=message,
    )
    await events.append(conn, before.realm_id, [event])
