"""Records to wire structs."""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from charter.api import wire
from charter.services.reads import TreeNode
from charter.store.directives import Directive
from charter.store.events import Event
from charter.store.realms import Realm
from charter.store.versions import Version


def realm(r: Realm) -> wire.RealmOut:
    return wire.RealmOut(id=r.id, name=r.name, revision=r.revision, created_at=r.created_at)


def directive(d: Directive, changed: bool | UnsetType = UNSET) -> wire.DirectiveOut:
    return wire.DirectiveOut(
        id=d.id,
        realm_id=d.realm_id,
        key=d.key,
        level=d.level,
        parent_id=d.parent_id,
        title=d.title,
        body=d.body,
        status=d.status,
        priority=d.priority,
        owner_agent_id=d.owner_agent_id,
        injection_mode=d.injection_mode,
        metadata=d.metadata,
        revision=d.revision,
        active_version=d.active_version,
        latest_version=d.latest_version,
        created_at=d.created_at,
        updated_at=d.updated_at,
        changed=changed,
    )


def summary(d: Directive) -> wire.DirectiveSummary:
    return wire.DirectiveSummary(
        id=d.id,
        key=d.key,
        level=d.level,
        parent_id=d.parent_id,
        title=d.title,
        status=d.status,
        priority=d.priority,
        owner_agent_id=d.owner_agent_id,
        injection_mode=d.injection_mode,
        metadata=d.metadata,
        revision=d.revision,
        active_version=d.active_version,
        latest_version=d.latest_version,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


def version(v: Version, author_name: str | None) -> wire.VersionOut:
    return wire.VersionOut(
        directive_id=v.directive_id,
        version=v.version,
        title=v.title,
        body=v.body,
        content_hash=v.content_hash,
        author=v.author,
        author_name=author_name,
        message=v.message,
        based_on=v.based_on,
        created_at=v.created_at,
    )


def version_summary(v: Version, author_name: str | None) -> wire.VersionSummary:
    return wire.VersionSummary(
        version=v.version,
        title=v.title,
        content_hash=v.content_hash,
        author=v.author,
        author_name=author_name,
        message=v.message,
        based_on=v.based_on,
        created_at=v.created_at,
    )


def ancestor(d: Directive) -> wire.AncestorOut:
    return wire.AncestorOut(
        id=d.id,
        key=d.key,
        level=d.level,
        title=d.title,
        status=d.status,
        priority=d.priority,
        owner_agent_id=d.owner_agent_id,
        revision=d.revision,
        active_version=d.active_version,
    )


def tree_node(node: TreeNode) -> wire.TreeNodeOut:
    d = node.directive
    return wire.TreeNodeOut(
        id=d.id,
        key=d.key,
        level=d.level,
        title=d.title,
        status=d.status,
        priority=d.priority,
        owner_agent_id=d.owner_agent_id,
        injection_mode=d.injection_mode,
        revision=d.revision,
        active_version=d.active_version,
        latest_version=d.latest_version,
        children=[tree_node(child) for child in node.children],
    )


def history_entry(e: Event, actor_name: str | None) -> wire.HistoryEntry:
    return wire.HistoryEntry(
        seq=e.seq,
        type=e.type,
        actor_name=actor_name,
        revision=e.revision,
        version=e.version,
        actor=e.actor,
        message=e.message,
        occurred_at=e.occurred_at,
        payload=e.payload,
    )


def event(e: Event) -> wire.EventOut:
    return wire.EventOut(
        seq=e.seq,
        type=e.type,
        directive_id=e.directive_id,
        revision=e.revision,
        version=e.version,
        actor=e.actor,
        occurred_at=e.occurred_at,
        affected_agents=e.affected_agents,
        payload=e.payload,
    )
