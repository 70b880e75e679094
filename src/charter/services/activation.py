"""Moving the active-version pointer: rollback to an existing version, and deactivation.

Neither makes a version; both raise the node's revision and write one event (a deactivation
also ends the node's running rollout and its live claim, each with its own event).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import null
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.domain.events import EventType
from charter.errors import RolloutInProgress
from charter.services.claims import release_for_deactivation
from charter.services.rollouts import aborted_by_deactivation
from charter.services.writes import Actor, Expected, Outcome, read_for_write, swap_revision
from charter.store import directives, events, versions
from charter.store.events import NewEvent


async def rollback(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    directive_id: str,
    expected: Expected,
    version: int,
    message: str | None,
) -> Outcome:
    current, now = await read_for_write(conn, realm_id, directive_id, expected)
    if current.rollout is not None:
        raise RolloutInProgress(
            f"rollout {current.rollout.id} is running: promote or abort it before a rollback"
        )
    target = await versions.get(conn, realm_id, directive_id, version)  # 404 if never made
    if current.active_version == version:
        return Outcome(current, changed=False)
    values = {"active_version": version, "updated_at": now}
    written = await swap_revision(conn, current, expected, values, target.content)
    revision = written.revision
    await _record(
        conn,
        realm_id,
        EventType.ROLLED_BACK,
        directive_id,
        revision,
        version,
        actor,
        message,
        {"from_version": current.active_version, "to_version": version},
        now,
    )
    return Outcome(written, changed=True)


async def deactivate(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    directive_id: str,
    expected: Expected,
    message: str | None = None,
) -> Outcome:
    current, now = await read_for_write(conn, realm_id, directive_id, expected)
    if current.active_version is None:
        return Outcome(current, changed=False)
    # A deactivated node shows its latest version's text.
    latest = await versions.get(conn, realm_id, directive_id, current.latest_version)
    # A running rollout ends with the deactivation, in its transaction (DESIGN §8).
    values = {"active_version": None, "updated_at": now, "rollout": null()}
    written = await swap_revision(conn, current, expected, values, latest.content)
    revision = written.revision
    # The rollout's abort and a live claim's release (no text is left to work on) are events
    # of this transaction too.
    ended = aborted_by_deactivation(current, revision, actor, now)
    ended += await release_for_deactivation(conn, realm_id, written, actor.key_id, now)
    await events.append(conn, realm_id, ended)
    await _record(
        conn,
        realm_id,
        EventType.DEACTIVATED,
        directive_id,
        revision,
        None,
        actor,
        message,
        {"previous_version": current.active_version},
        now,
    )
    return Outcome(written, changed=True)


async def _record(
    conn: AsyncConnection,
    realm_id: str,
    kind: EventType,
    directive_id: str,
    revision: int,
    version: int | None,
    actor: Actor,
    message: str | None,
    payload: dict[str, int | None],
    now: datetime,
) -> None:
    below = directives.owners(await directives.subtree(conn, realm_id, directive_id))
    event = NewEvent(
        type=kind,
        directive_id=directive_id,
        revision=revision,
        version=version,
        actor=actor.key_id,
        occurred_at=now,
        affected_agents=sorted(below),
        payload=dict(payload),
        message=message,
    )
    await events.append(conn, realm_id, [event])
