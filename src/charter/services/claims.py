"""Claims with leases: take one, keep it alive, finish it, or lose it when the lease runs out.

Every step takes the realm lock, writes the claim and its event in the caller's transaction,
and leaves the lease's timer (store/timers.py) where the due-work loop finds it (ADR 0008).
Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.domain.events import EventType
from charter.domain.tree import Status
from charter.domain.versions import Content
from charter.domain.work import LEASE_ACTOR, ClaimState, Outcome, check_result
from charter.errors import AlreadyClaimed, Forbidden, InvalidTransition, NotDue, NotFound
from charter.ids import new_id
from charter.services import writes
from charter.services.writes import Actor, Expected, Patch
from charter.store import claims, directives, events, realms, timers
from charter.store.claims import Claim
from charter.store.directives import Directive
from charter.store.events import NewEvent
from charter.store.timers import Timer

# Why a `directive.claim_expired` ended the claim: its lease ran out, or its directive was
# deactivated.
RAN_OUT = "lease"
RELEASED_BY_DEACTIVATION = "deactivated"


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    agent_id: str
    lease_seconds: int
    rerun: bool = False
    # An agent key's claim: only of a directive its agent owns. It may write nothing else,
    # and a claim's finish closes the node (with cascade, its subtree) and rerun reopens it.
    owned_only: bool = False


@dataclass(frozen=True, slots=True)
class Finish:
    outcome: Outcome
    result: Any = None
    error_code: str | None = None
    cascade: bool = False


@dataclass(frozen=True, slots=True)
class Finished:
    claim: Claim
    directive: Directive
    changed: bool
    reused: bool


async def claim(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    directive_id: str,
    request: ClaimRequest,
    max_depth: int,
) -> Claim:
    now = await realms.lock(conn, realm_id)
    current = await directives.get(conn, realm_id, directive_id)
    if request.owned_only and current.owner_agent_id != request.agent_id:
        raise Forbidden("an agent key claims only its own agent's directives")
    # A lease that ran out a moment ago, before the due-work loop came by, ends here: the
    # same statement, so it still ends once.
    held = await claims.live_for(conn, realm_id, directive_id)
    if held is not None and held.expires_at <= now:
        await expire(conn, realm_id, held.id, now)
    elif held is not None:
        # Refused early, without the queries below; the insert's index is still the rule.
        raise _already_claimed(held)
    if current.active_version is None:
        # Before a rerun could reopen it: a deactivated directive's text is in no prompt, so
        # there is no work to do until a rollback brings a version back. Its deactivation
        # holds the realm's share lock, which this step's lock excludes: it either committed
        # before this read, or it runs after this claim commits and releases it.
        raise NotDue("the directive is deactivated: it has no active version")
    if current.status.terminal:
        if not request.rerun:
            raise InvalidTransition(
                f"the directive is {current.status}; claim with rerun: true to reopen it"
            )
        reopen = Patch(status=Status.ACTIVE, reopen=True)
        expected = Expected(current.revision, via_header=False)
        current = (
            await writes.update(conn, realm_id, actor, directive_id, expected, reopen, max_depth)
        ).directive
    if current.status is Status.PAUSED:
        raise NotDue("the directive is paused")
    if current.not_before is not None and now < current.not_before:
        raise NotDue("the directive is not due yet", not_before=current.not_before.isoformat())
    attempt = await claims.last_attempt(conn, realm_id, directive_id) + 1
    claim_id = new_id("clm")
    expires_at = now + timedelta(seconds=request.lease_seconds)
    taken = await claims.insert_live(
        conn,
        realm_id,
        {
            "id": claim_id,
            "directive_id": directive_id,
            "agent_id": request.agent_id,
            "attempt": attempt,
            "lease_seconds": request.lease_seconds,
            "created_at": now,
            "expires_at": expires_at,
        },
    )
    if not taken:
        holder = await claims.live_for(conn, realm_id, directive_id)
        raise _already_claimed(holder)
    await timers.add(conn, realm_id, Timer(claim_id, timers.CLAIM, expires_at))
    made = await claims.get(conn, realm_id, claim_id)
    await _record(conn, realm_id, EventType.CLAIMED, current, actor.key_id, made)
    return made


async def heartbeat(
    conn: AsyncConnection, realm_id: str, directive_id: str, claim_id: str, lease: int | None
) -> Claim:
    """Extend a live lease from now, by `lease` seconds or the claim's own lease."""
    now = await realms.lock(conn, realm_id)
    current = await get(conn, realm_id, directive_id, claim_id)
    seconds = current.lease_seconds if lease is None else lease
    extended = await claims.extend(conn, realm_id, claim_id, now, now + timedelta(seconds=seconds))
    if extended is None:
        raise InvalidTransition(_not_live(current, now))
    await timers.move(conn, realm_id, claim_id, extended.expires_at)
    return extended


async def finish(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    directive_id: str,
    claim_id: str,
    done: Finish,
    max_depth: int,
) -> Finished:
    check_result(done.result)
    now = await realms.lock(conn, realm_id)
    held = await get(conn, realm_id, directive_id, claim_id)
    if held.state in (ClaimState.SUCCEEDED, ClaimState.FAILED):
        if (held.state, held.result, held.error_code) == (
            done.outcome.value,
            done.result,
            done.error_code,
        ):
            node = await directives.get(conn, realm_id, directive_id)
            return Finished(held, node, changed=False, reused=True)
        raise InvalidTransition(f"the claim already finished: {held.state}")
    if held.state != ClaimState.LIVE or held.expires_at <= now:
        raise InvalidTransition(_not_live(held, now))
    current = await directives.get(conn, realm_id, directive_id)
    expected = Expected(current.revision, via_header=False)
    if done.outcome is Outcome.SUCCEEDED:
        complete = Patch(status=Status.COMPLETED, cascade=done.cascade)
        node = (
            await writes.update(conn, realm_id, actor, directive_id, expected, complete, max_depth)
        ).directive
        kind = EventType.SUCCEEDED
    else:
        failure = {"code": done.error_code or "failed", "at": now.isoformat()}
        values = {"last_failure": failure, "updated_at": now}
        content = Content(current.title, current.body)
        node = await writes.swap_revision(conn, current, expected, values, content)
        kind = EventType.FAILED
    ended = await claims.end(
        conn, realm_id, claim_id, done.outcome.value, now, done.error_code, done.result
    )
    assert ended is not None  # live under the realm lock, read just above
    await timers.remove(conn, realm_id, claim_id)
    await _record(conn, realm_id, kind, node, actor.key_id, ended)
    return Finished(ended, node, changed=True, reused=False)


async def expire(
    conn: AsyncConnection, realm_id: str, claim_id: str, now: datetime
) -> datetime | None:
    """Release a lease that ran out (the due-work loop's handler; needs the realm lock).

    Once: the conditional UPDATE ends it only if it is still live and past its expiry. A
    lease renewed since answers its new expiry, for the timer to wait for.
    """
    ended = await claims.expire(conn, realm_id, claim_id, now)
    if ended is None:
        try:
            current = await claims.get(conn, realm_id, claim_id)
        except NotFound:
            return None
        return current.expires_at if current.state == ClaimState.LIVE else None
    await timers.remove(conn, realm_id, claim_id)
    node = await directives.get(conn, realm_id, ended.directive_id)
    await _record(conn, realm_id, EventType.CLAIM_EXPIRED, node, LEASE_ACTOR, ended, RAN_OUT)
    return None


async def release_for_deactivation(
    conn: AsyncConnection, realm_id: str, node: Directive, actor: str, now: datetime
) -> list[NewEvent]:
    """End the directive's live claim as part of its deactivation; the event to append.

    The claim ends `expired`, its timer goes, and the holder's next heartbeat or finish is
    409: the work it held no longer exists in any prompt. Under the deactivation's share lock
    (no claim step runs meanwhile), with the deactivation's time and the node as written.
    """
    held = await claims.live_for(conn, realm_id, node.id)
    if held is None:
        return []
    ended = await claims.end(conn, realm_id, held.id, ClaimState.EXPIRED, now)
    assert ended is not None  # live under the share lock, which every claim step excludes
    await timers.remove(conn, realm_id, held.id)
    return [_event(EventType.CLAIM_EXPIRED, node, actor, now, ended, RELEASED_BY_DEACTIVATION)]


async def get(conn: AsyncConnection, realm_id: str, directive_id: str, claim_id: str) -> Claim:
    """The claim, if it is one of this directive's."""
    found = await claims.get(conn, realm_id, claim_id)
    if found.directive_id != directive_id:
        raise NotFound(f"claim {claim_id!r} not found")
    return found


def _already_claimed(holder: Claim | None) -> AlreadyClaimed:
    return AlreadyClaimed(
        "the directive is claimed",
        holder=None if holder is None else holder.agent_id,
        expires_at=None if holder is None else holder.expires_at.isoformat(),
    )


def _not_live(held: Claim, now: datetime) -> str:
    if held.state == ClaimState.LIVE and held.expires_at <= now:
        return "the claim's lease ran out"
    return f"the claim is {held.state}"


async def _record(
    conn: AsyncConnection,
    realm_id: str,
    kind: EventType,
    node: Directive,
    actor: str,
    held: Claim,
    reason: str | None = None,
) -> None:
    # The event's time under the lock, after any write this step made (a reopen, a
    # completion): along the feed, time never goes back.
    now = await realms.lock(conn, realm_id)
    await events.append(conn, realm_id, [_event(kind, node, actor, now, held, reason)])


def _event(
    kind: EventType,
    node: Directive,
    actor: str,
    now: datetime,
    held: Claim,
    reason: str | None = None,
) -> NewEvent:
    # Claims are not part of any prompt: the event affects no agent's composition. It names
    # the holder and the directive's owner, whom a webhook's `agents` filter matches.
    payload: dict[str, Any] = {
        "claim_id": held.id,
        "agent_id": held.agent_id,
        "owner_agent_id": node.owner_agent_id,
        "attempt": held.attempt,
        "expires_at": held.expires_at.isoformat(),
    }
    if kind is EventType.FAILED:
        payload["error_code"] = held.error_code
    if reason is not None:
        payload["reason"] = reason
    return NewEvent(
        type=kind,
        directive_id=node.id,
        revision=node.revision,
        version=node.active_version,
        actor=actor,
        occurred_at=now,
        payload=payload,
    )
