"""Records to wire structs: fields are copied by name, so a wire type names what it shows."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from charter.api import wire
from charter.domain.rollouts import Rollout
from charter.services import outcomes
from charter.services.reads import TreeNode
from charter.store.directives import Directive
from charter.store.events import Event
from charter.store.realms import Realm
from charter.store.versions import Version

S = TypeVar("S", bound=msgspec.Struct)


def _as(kind: type[S], record: object, **extra: Any) -> S:
    """`kind` filled from the record's attributes of the same names (and `extra`)."""
    out = msgspec.convert(record, kind, from_attributes=True)
    return msgspec.structs.replace(out, **extra) if extra else out


def realm(r: Realm) -> wire.RealmOut:
    return _as(wire.RealmOut, r)


def directive(d: Directive, changed: bool | UnsetType = UNSET) -> wire.DirectiveOut:
    return _as(wire.DirectiveOut, d, changed=changed)


def summary(d: Directive) -> wire.DirectiveSummary:
    return _as(wire.DirectiveSummary, d)


def version(v: Version, author_name: str | None) -> wire.VersionOut:
    return _as(wire.VersionOut, v, author_name=author_name)


def version_summary(v: Version, author_name: str | None) -> wire.VersionSummary:
    return _as(wire.VersionSummary, v, author_name=author_name)


def ancestor(d: Directive) -> wire.AncestorOut:
    return _as(wire.AncestorOut, d)


def tree_node(node: TreeNode) -> wire.TreeNodeOut:
    children = [tree_node(child) for child in node.children]
    return _as(wire.TreeNodeOut, node.directive, children=children)


def history_entry(e: Event, actor_name: str | None) -> wire.HistoryEntry:
    return _as(wire.HistoryEntry, e, actor_name=actor_name)


def event(e: Event) -> wire.EventOut:
    return _as(wire.EventOut, e)


def rollout_report(
    d: Directive, rollout: Rollout, metrics: list[outcomes.MetricReport]
) -> wire.RolloutReport:
    return wire.RolloutReport(
        directive_id=d.id,
        revision=d.revision,
        active_version=d.active_version,
        rollout=_as(wire.RolloutOut, rollout),
        metrics=[_as(wire.MetricReport, m) for m in metrics],
    )


def outcome(accepted: outcomes.Accepted) -> wire.OutcomeAccepted:
    return _as(wire.OutcomeAccepted, accepted)
