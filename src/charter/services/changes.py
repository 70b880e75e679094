"""What one PATCH changes: the column values, the events that say so, and who they affect."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.domain import tree
from charter.domain.events import EventType
from charter.domain.tree import InjectionMode, Level, Priority, Status
from charter.domain.versions import Content
from charter.store import directives
from charter.store.directives import Directive, Node
from charter.store.events import NewEvent

if TYPE_CHECKING:
    from charter.services.writes import Actor


def raw_value(value: Any) -> Any:
    """Enum members compare and store as their values."""
    return value.value if isinstance(value, Priority | InjectionMode | Status | Level) else value


class ChangePlan:
    """What one PATCH changes, and the events that say so."""

    def __init__(self, current: Directive) -> None:
        self.current = current
        self.values: dict[str, Any] = {}
        self.content: Content | None = None
        self.attributes: list[str] = []
        self.moved = False
        self.activated = True  # False: the new version is a draft

    def events(
        self, revision: int, actor: Actor, now: datetime, message: str | None, subtree: list[Node]
    ) -> list[NewEvent]:
        current = self.current
        below = directives.owners(subtree)
        version = self.values.get("active_version", current.active_version)

        def event(kind: EventType, affected: set[str], payload: dict[str, Any]) -> NewEvent:
            return NewEvent(
                type=kind,
                directive_id=current.id,
                revision=revision,
                version=version,
                actor=actor.key_id,
                occurred_at=now,
                affected_agents=sorted(affected),
                payload=payload,
                message=message,
            )

        out: list[NewEvent] = []
        if self.content is not None and not self.activated:
            # A draft: nothing serves it, so nobody's composition changes.
            draft = self.values["latest_version"]
            made = event(
                EventType.VERSION_CREATED,
                set(),
                {"version": draft, "based_on": current.active_version, "activated": False},
            )
            out.append(dataclasses.replace(made, version=draft))  # the event is the draft's
        elif self.content is not None:
            out.append(
                event(
                    EventType.VERSION_CREATED,
                    below,
                    {"version": version, "based_on": current.active_version},
                )
            )
        if self.attributes:
            out.append(
                event(
                    EventType.UPDATED,
                    _attribute_audience(current, self.values, below),
                    _attribute_payload(current, self.values, self.attributes),
                )
            )
        if self.moved:
            out.append(
                event(
                    EventType.MOVED,
                    below,
                    {"from_parent_id": current.parent_id, "to_parent_id": self.values["parent_id"]},
                )
            )
        if "status" in self.values:
            out.append(
                event(
                    EventType.STATUS_CHANGED,
                    below,
                    {"from": current.status.value, "to": self.values["status"]},
                )
            )
        return out


def _attribute_audience(current: Directive, values: dict[str, Any], below: set[str]) -> set[str]:
    """Everyone whose composition shows this node (its layer carries the revision), plus the
    old and the new owner when ownership moves."""
    affected = set(below)
    if "owner_agent_id" in values:
        affected |= {a for a in (current.owner_agent_id, values["owner_agent_id"]) if a}
    return affected


def _attribute_payload(
    current: Directive, values: dict[str, Any], names: list[str]
) -> dict[str, Any]:
    payload: dict[str, Any] = {"changed": names}
    for name in ("priority", "owner_agent_id", "injection_mode"):
        if name in values:
            payload[name] = {"from": raw_value(getattr(current, name)), "to": values[name]}
    return payload


async def cascade_status(
    conn: AsyncConnection,
    realm_id: str,
    ids: list[str],
    status: Status,
    subtree: list[Node],
    actor: Actor,
    now: datetime,
    message: str | None,
    root_id: str,
) -> list[NewEvent]:
    before = {node.id: node for node in subtree}
    children = tree.children_index(tree.Link(n.id, n.parent_id) for n in subtree)
    out: list[NewEvent] = []
    for row in await directives.set_status(conn, realm_id, ids, status, now):
        below = {
            owner
            for node_id, _ in tree.walk_down(row.id, children, directives.WALK_CAP)
            if (owner := before[node_id].owner_agent_id) is not None
        }
        out.append(
            NewEvent(
                type=EventType.STATUS_CHANGED,
                directive_id=row.id,
                revision=row.revision,
                version=row.active_version,
                actor=actor.key_id,
                occurred_at=now,
                affected_agents=sorted(below),
                payload={
                    "from": before[row.id].status.value,
                    "to": status.value,
                    "cascade_from": root_id,
                },
                message=message,
            )
        )
    position = {node_id: i for i, node_id in enumerate(ids)}
    out.sort(key=lambda ev: position[ev.directive_id])
    return out
