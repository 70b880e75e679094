"""Directive writes: create, CAS update (content, attributes, move, status), rollback, deactivate.

Every write takes a realm lock first, checks the expected revision, and writes the row, the
version and the events in the caller's transaction; the events last, since they take the
feed's sequencer (`store.realms.sequence`). Nothing here commits.

Which realm lock (ADR 0006): a structure write (a create, a move, a status change that closes
a node, an owner change) takes `realms.lock`, exclusive; every other write on one node takes
`realms.share`, so node writes on different directives of a realm run in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from msgspec import UNSET, UnsetType
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.domain import tree
from charter.domain.events import EventType
from charter.domain.metadata import validate_metadata
from charter.domain.tree import InjectionMode, Level, Priority, Status
from charter.domain.versions import Content, validate_body, validate_title
from charter.errors import InvalidHierarchy, InvalidRequest, NotFound, StaleRevision
from charter.ids import new_directive_id
from charter.services.changes import ChangePlan, cascade_status, raw_value
from charter.store import directives, events, realms, swap, versions
from charter.store.directives import Directive, Node
from charter.store.events import NewEvent
from charter.store.versions import Version


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: the caller's key id (and name, when known)."""

    key_id: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class NewDirective:
    level: Level
    title: str
    body: str
    parent_id: str | None = None
    key: str | None = None
    status: Status = Status.ACTIVE
    priority: Priority = Priority.NORMAL
    owner_agent_id: str | None = None
    injection_mode: InjectionMode = InjectionMode.SYSTEM_FIRST
    metadata: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Patch:
    """A PATCH: UNSET leaves a field alone; `parent_id=None` moves the node to the root."""

    title: str | UnsetType = UNSET
    body: str | UnsetType = UNSET
    message: str | None = None
    status: Status | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    owner_agent_id: str | UnsetType | None = UNSET
    parent_id: str | UnsetType | None = UNSET
    injection_mode: InjectionMode | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    key: str | UnsetType | None = UNSET
    not_before: datetime | UnsetType | None = UNSET
    reopen: bool = False
    cascade: bool = False
    # False: a draft, a new version that nothing serves until activated (DESIGN §8).
    activate: bool = True


# The Patch fields with rules of their own in `update`; every other field is an attribute,
# written to its column as it is. Derived, not listed: a new Patch field is written (or, with
# no field of its name on `Directive`, refused at once) and never silently dropped.
_CONTENT_FIELDS = frozenset({"title", "body"})
_CHANGE_FIELDS = frozenset({"message"})
_MOVE_FIELDS = frozenset({"parent_id"})
_STATUS_FIELDS = frozenset({"status", "reopen", "cascade"})
_DRAFT_FIELDS = frozenset({"activate"})
_RULED = _CONTENT_FIELDS | _CHANGE_FIELDS | _MOVE_FIELDS | _STATUS_FIELDS | _DRAFT_FIELDS
# What the one-call text swap handles (ADR 0004): a PATCH with any other field set goes the
# general way.
_SWAP_FIELDS = _CONTENT_FIELDS | _CHANGE_FIELDS
# NewDirective fields that are not columns of the directive row.
_NOT_COLUMNS = _CONTENT_FIELDS | _CHANGE_FIELDS


def _attributes(patch: Patch) -> list[str]:
    return [f.name for f in fields(patch) if f.name not in _RULED]


@dataclass(frozen=True, slots=True)
class Expected:
    """The caller's expected revision and where it came from (header: 412, body: 409)."""

    revision: int
    via_header: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    directive: Directive
    changed: bool


async def create(
    conn: AsyncConnection, realm_id: str, actor: Actor, new: NewDirective, max_depth: int
) -> Directive:
    validate_title(new.title)
    validate_body(new.body)
    validate_metadata(new.metadata)
    if new.status.terminal:
        raise InvalidRequest("a directive is created active or paused")
    now = await realms.lock(conn, realm_id)
    if new.parent_id is None:
        tree.check_parent_level(new.level, None)
    else:
        chain = await _parent_chain(conn, realm_id, new.parent_id)
        tree.check_parent_level(new.level, chain[0].level)
        tree.check_depth(len(chain), 1, max_depth)
    directive_id = new_directive_id()
    row = {f.name: raw_value(getattr(new, f.name)) for f in fields(new)}
    await directives.insert_row(
        conn,
        {
            **{name: value for name, value in row.items() if name not in _NOT_COLUMNS},
            "realm_id": realm_id,
            "id": directive_id,
            "revision": 1,
            "active_version": 1,
            "latest_version": 1,
            "created_at": now,
            "updated_at": now,
        },
    )
    content = Content(new.title, new.body)
    await versions.add(conn, realm_id, _version(directive_id, 1, content, actor, new, None, now))
    owners = [new.owner_agent_id] if new.owner_agent_id else []
    await events.append(
        conn,
        realm_id,
        [
            NewEvent(
                type=EventType.CREATED,
                directive_id=directive_id,
                revision=1,
                version=1,
                actor=actor.key_id,
                occurred_at=now,
                affected_agents=owners,
                payload={"level": new.level.value, "parent_id": new.parent_id},
                message=new.message,
            )
        ],
    )
    return await directives.get(conn, realm_id, directive_id)


def _version(
    directive_id: str,
    number: int,
    content: Content,
    actor: Actor,
    new: NewDirective | Patch,
    based_on: int | None,
    now: datetime,
) -> Version:
    return Version(
        directive_id=directive_id,
        version=number,
        title=content.title,
        body=content.body,
        content_hash=content.hash,
        author=actor.key_id,
        message=new.message,
        based_on=based_on,
        created_at=now,
    )


async def _parent_chain(conn: AsyncConnection, realm_id: str, parent_id: str) -> list[Directive]:
    try:
        return await directives.ancestry(conn, realm_id, parent_id)
    except NotFound as exc:
        raise InvalidHierarchy(f"parent {parent_id!r} is not a directive of this realm") from exc


async def read_for_write(
    conn: AsyncConnection,
    realm_id: str,
    directive_id: str,
    expected: Expected,
    *,
    structure: bool = False,
) -> tuple[Directive, datetime]:
    """Read the node, refuse at once if the expected revision is stale, then lock the realm.

    `structure`: the write changes what other writes read (the tree, a subtree's statuses or
    owners), and takes the exclusive lock; otherwise the shared one. A stale revision is
    refused before any lock (revisions only grow: stale now, stale later); a node read before
    the lock is still the one the CAS statement checks, which refuses it if it changed since.
    Also the change's time (the events take the sequencer's, which is never earlier).
    """
    try:
        current: Directive | None = await directives.get(conn, realm_id, directive_id)
    except NotFound:
        current = None  # after the lock, which tells a missing realm apart
    if current is not None and current.revision != expected.revision:
        raise StaleRevision(current.revision, via_header=expected.via_header)
    if structure:
        now = await realms.lock(conn, realm_id)
    else:
        now = await realms.share(conn, realm_id)
    if current is None:
        current = await directives.get(conn, realm_id, directive_id)
        if current.revision != expected.revision:
            raise StaleRevision(current.revision, via_header=expected.via_header)
    return current, now


async def swap_revision(
    conn: AsyncConnection,
    current: Directive,
    expected: Expected,
    values: dict[str, Any],
    content: Content,
) -> Directive:
    """The CAS statement; returns the node as written, showing `content`."""
    row = await directives.compare_and_swap(
        conn, current.realm_id, current.id, expected.revision, values
    )
    if row is None:
        now_at = await directives.revision_of(conn, current.realm_id, current.id)
        raise StaleRevision(now_at or 0, via_header=expected.via_header)
    return directives.with_content(row, content.title, content.body)


async def update(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    directive_id: str,
    expected: Expected,
    patch: Patch,
    max_depth: int,
) -> Outcome:
    if patch.metadata is not UNSET:  # before comparing it: equality recurses too
        validate_metadata(patch.metadata)
    if not patch.activate and patch.title is UNSET and patch.body is UNSET:
        raise InvalidRequest("activate: false makes a draft, and needs a title or a body")
    if swap.available(conn) and _text_only(patch):
        outcome = await _swap_text(conn, realm_id, actor, directive_id, expected, patch)
        if outcome is not None:
            return outcome
    current, now = await read_for_write(
        conn, realm_id, directive_id, expected, structure=_structural(patch)
    )
    plan = ChangePlan(current)

    content = _new_content(current, patch)
    if content is not None:
        plan.values["latest_version"] = current.latest_version + 1
        if patch.activate:
            plan.values["active_version"] = current.latest_version + 1
        plan.content = content
        plan.activated = patch.activate

    for name in _attributes(patch):
        value = getattr(patch, name)
        if value is not UNSET and raw_value(value) != raw_value(getattr(current, name)):
            plan.values[name] = raw_value(value)
            plan.attributes.append(name)

    # Owners below (the audience of any change), the height for a move, open descendants for
    # a status change: one query, whatever the PATCH holds.
    subtree = await directives.subtree(conn, realm_id, directive_id)

    if patch.parent_id is not UNSET and patch.parent_id != current.parent_id:
        await _check_move(conn, current, patch.parent_id, subtree, max_depth)
        plan.values["parent_id"] = patch.parent_id
        plan.moved = True

    cascade_ids: list[str] = []
    if patch.status is not UNSET and patch.status is not current.status:
        tree.check_transition(current.status, patch.status, reopen=patch.reopen)
        open_below = [n.id for n in subtree if n.id != directive_id and not n.status.terminal]
        tree.check_children_closed(patch.status, len(open_below), cascade=patch.cascade)
        if patch.status.terminal:
            cascade_ids = open_below
        plan.values["status"] = patch.status.value

    if not plan.values:
        return Outcome(current, changed=False)

    plan.values["updated_at"] = now
    # A draft leaves the active text showing.
    live = plan.content if plan.activated else None
    shown = live or Content(current.title, current.body)
    written = await swap_revision(conn, current, expected, plan.values, shown)
    revision = written.revision
    if plan.content is not None:
        number = plan.values["latest_version"]
        version = _version(
            directive_id, number, plan.content, actor, patch, current.active_version, now
        )
        await versions.add(conn, realm_id, version)
    new_events = plan.events(revision, actor, now, patch.message, subtree)
    if cascade_ids:
        assert patch.status is not UNSET
        new_events += await cascade_status(
            conn,
            realm_id,
            cascade_ids,
            patch.status,
            subtree,
            actor,
            now,
            patch.message,
            directive_id,
        )
    # As the one-call swap has it (store/swap.py): new text without `{{`, and nothing else
    # changed, only removes placeholders, so the check before commit can skip it.
    holes = not (_text_only(patch) and plan.content is not None and "{{" not in plan.content.body)
    await events.append(conn, realm_id, new_events, may_leave_holes=holes)
    return Outcome(written, changed=True)


def _structural(patch: Patch) -> bool:
    """Whether a PATCH takes the realm's exclusive lock (see the module's docstring).

    A move must see an ancestry no other move changes (else two could close a cycle); closing
    a node must see its subtree's statuses hold still (a child reopened meanwhile would stay
    open under it); an owner is in the audience every write on an ancestor names, which its
    subtree walk must read exactly. Any other field changes only its own node.
    """
    closes = patch.status is not UNSET and patch.status.terminal
    return closes or patch.parent_id is not UNSET or patch.owner_agent_id is not UNSET


def _text_only(patch: Patch) -> bool:
    """Whether a PATCH touches nothing but the title and the body.

    Every field outside `_SWAP_FIELDS` must be at its default, whatever fields Patch has.
    """
    if patch.title is UNSET and patch.body is UNSET:
        return False
    return all(
        getattr(patch, f.name) is f.default for f in fields(patch) if f.name not in _SWAP_FIELDS
    )


async def _swap_text(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    directive_id: str,
    expected: Expected,
    patch: Patch,
) -> Outcome | None:
    """A text-only PATCH on PostgreSQL: read without the lock, then swap in one call.

    The read merges and hashes the content outside the lock; the function's revision check
    under the lock proves it was current (any change raises the revision). None: the node
    was not found, and the ordinary path says so (it tells a missing realm apart).
    """
    try:
        current = await directives.get(conn, realm_id, directive_id)
    except NotFound:
        return None
    if current.revision != expected.revision:  # revisions only grow: stale now, stale later
        raise StaleRevision(current.revision, via_header=expected.via_header)
    content = _new_content(current, patch)
    if content is None:
        return Outcome(current, changed=False)
    swapped = await swap.swap_content(
        conn, current, expected.revision, content, actor.key_id, patch.message
    )
    if swapped.directive is None:
        if swapped.revision is None:  # never deleted, so never seen; said plainly all the same
            raise NotFound(f"directive {directive_id!r} not found")
        raise StaleRevision(swapped.revision, via_header=expected.via_header)
    return Outcome(swapped.directive, changed=True)


def _new_content(current: Directive, patch: Patch) -> Content | None:
    """The content a PATCH makes live, or None when it makes no new version."""
    if patch.title is UNSET and patch.body is UNSET:
        return None
    title = current.title if patch.title is UNSET else patch.title
    body = current.body if patch.body is UNSET else patch.body
    validate_title(title)
    validate_body(body)
    proposed = Content(title, body)
    # A deactivated node has no live text: new text always makes (and activates) a version.
    if current.active_version is not None and proposed == Content(current.title, current.body):
        return None
    return proposed


async def _check_move(
    conn: AsyncConnection,
    current: Directive,
    new_parent: str | None,
    subtree: list[Node],
    max_depth: int,
) -> None:
    height = max(node.depth for node in subtree) + 1
    if new_parent is None:
        tree.check_parent_level(current.level, None)
        tree.check_depth(0, height, max_depth)
        return
    chain = await _parent_chain(conn, current.realm_id, new_parent)
    parents = {node.id: node.parent_id for node in chain}
    tree.check_move(current.id, new_parent, parents, directives.WALK_CAP)
    tree.check_parent_level(current.level, chain[0].level)
    tree.check_depth(len(chain), height, max_depth)
