"""From a tree file and the realm as it is, the steps that make the realm match the file.

Pure: no I/O. Each step names the revision it was planned from, so the apply can compare
and swap against exactly the state the operator reviewed.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Literal

from charter.cli._context import InvalidFile, an
from charter.cli.treefile import FileNode, TreeFile, walk
from charter.client import models as m

Kind = Literal["create", "update", "status", "deactivate"]


@dataclass
class Step:
    kind: Kind
    key: str  # the node's key ("" for an unkeyed node, only ever pruned)
    title: str
    changes: list[str] = field(default_factory=list)
    diff: str = ""
    directive_id: str | None = None  # None: made by an earlier step of this plan
    planned_revision: int | None = None
    new: m.NewDirective | None = None
    parent_key: str | None = None  # create and move: the parent to resolve at apply time
    patch: m.Patch | None = None
    moved: bool = False
    pruned: bool = False  # a deactivation only because the file leaves the node out


@dataclass
class Plan:
    realm: str
    realm_revision: int
    steps: list[Step]
    untouched: list[m.Directive]  # live, but not in the file, and no --prune

    live: int = 0  # the realm's directives with an active version, when planned

    def count(self, kind: Kind) -> int:
        return sum(1 for s in self.steps if s.kind == kind)

    @property
    def pruned(self) -> int:
        return sum(1 for s in self.steps if s.pruned)


@dataclass(frozen=True)
class RealmState:
    realm: str
    revision: int
    directives: list[m.Directive]


def make_plan(desired: TreeFile, state: RealmState, *, prune: bool) -> Plan:
    by_key = {d.key: d for d in state.directives if d.key is not None}
    key_of = {d.id: d.key for d in state.directives}
    main: list[Step] = []
    terminal: list[Step] = []
    deactivations: list[Step] = []
    declared: set[str] = set()

    for node, parent in walk(desired.directives):
        declared.add(node.key)
        parent_key = parent.key if parent else None
        current = by_key.get(node.key)
        if current is None:
            main.append(_create(node, parent_key))
            if node.status in m.TERMINAL:
                terminal.append(_status(node, None, "active"))
            if not node.active:
                deactivations.append(Step("deactivate", node.key, node.title))
            continue
        if current.level != node.level:
            raise InvalidFile(
                f"{node.key!r} is {an(current.level)} node on the server and "
                f"{an(node.level)} node in the file; a level cannot change "
                "(give the new node a new key)"
            )
        step = _update(node, current, parent_key, key_of.get(current.parent_id or ""))
        if step is not None:
            main.append(step)
        if node.status in m.TERMINAL and node.status != current.status:
            terminal.append(_status(node, current, _after_update(current, step)))
        elif node.status == "paused" and current.status in m.TERMINAL:
            main.append(_status(node, current, "active"))  # reopened to active first
        if not node.active and current.active_version is not None:
            deactivations.append(_deactivate(current, "set active: false"))

    untouched: list[m.Directive] = []
    for d in state.directives:
        if (d.key is None or d.key not in declared) and d.active_version is not None:
            if prune:
                deactivations.append(_deactivate(d, "not in the file (--prune)", pruned=True))
            else:
                untouched.append(d)

    # Children are completed before their parents: the server refuses the other order.
    terminal.reverse()
    live = sum(1 for d in state.directives if d.active_version is not None)
    return Plan(state.realm, state.revision, main + terminal + deactivations, untouched, live)


def _create(node: FileNode, parent_key: str | None) -> Step:
    status: m.Status = "active" if node.status in m.TERMINAL else node.status
    new = m.NewDirective(
        level=node.level,
        title=node.title,
        body=node.body,
        key=node.key,
        status=status,
        priority=node.priority,
        owner_agent_id=node.owner_agent_id,
        injection_mode=node.injection_mode,
        metadata=node.metadata,
        message="charter apply",
    )
    where = f" under {parent_key}" if parent_key else " as a root"
    return Step(
        "create", node.key, node.title, [f"{node.level}{where}"], new=new, parent_key=parent_key
    )


def _update(
    node: FileNode, current: m.Directive, parent_key: str | None, current_parent_key: str | None
) -> Step | None:
    patch = m.Patch(message="charter apply")
    changes: list[str] = []
    text = ""
    reactivate = node.active and current.active_version is None
    if node.title != current.title or node.body != current.body or reactivate:
        patch.title, patch.body = node.title, node.body
        if reactivate:
            changes.append("reactivate (a new version)")
        if node.title != current.title:
            changes.append(f"title: {current.title!r} → {node.title!r}")
        if node.body != current.body:
            changes.append("body")
            text = _diff(current.body, node.body, node.key)
    if node.priority != current.priority:
        patch.priority = node.priority
        changes.append(f"priority: {current.priority} → {node.priority}")
    if node.owner_agent_id != current.owner_agent_id:
        patch.owner_agent_id = node.owner_agent_id
        changes.append(f"owner: {current.owner_agent_id or '-'} → {node.owner_agent_id or '-'}")
    if node.injection_mode != current.injection_mode:
        patch.injection_mode = node.injection_mode
        changes.append(f"injection_mode: {current.injection_mode} → {node.injection_mode}")
    if node.metadata != current.metadata:
        patch.metadata = node.metadata
        changes.append(f"metadata: {_json(current.metadata)} → {_json(node.metadata)}")
    moved = parent_key != current_parent_key
    if moved:
        changes.append(f"move: {current_parent_key or '(root)'} → {parent_key or '(root)'}")
    if node.status != current.status and node.status not in m.TERMINAL:
        if current.status in m.TERMINAL:
            patch.status, patch.reopen = "active", True
            changes.append(f"status: {current.status} → active (reopen)")
        else:
            patch.status = node.status
            changes.append(f"status: {current.status} → {node.status}")
    elif (
        current.status in m.TERMINAL and node.status in m.TERMINAL and node.status != current.status
    ):
        patch.status, patch.reopen = "active", True  # completed ⇄ cancelled goes through active
        changes.append(f"status: {current.status} → active (reopen, on the way to {node.status})")
    if not changes:
        return None
    return Step(
        "update",
        node.key,
        node.title,
        changes,
        text,
        current.id,
        current.revision,
        patch=patch,
        parent_key=parent_key,
        moved=moved,
    )


def _after_update(current: m.Directive, step: Step | None) -> str:
    if step is not None and step.patch is not None and isinstance(step.patch.status, str):
        return step.patch.status
    return current.status


def _status(node: FileNode, current: m.Directive | None, before: str) -> Step:
    target = node.status
    patch = m.Patch(status=target, message="charter apply")
    return Step(
        "status",
        node.key,
        node.title,
        [f"status: {before} → {target}"],
        directive_id=current.id if current else None,
        planned_revision=current.revision if current else None,
        patch=patch,
    )


def _deactivate(d: m.Directive, why: str, *, pruned: bool = False) -> Step:
    return Step(
        "deactivate",
        d.key or "",
        d.title,
        [why],
        directive_id=d.id,
        planned_revision=d.revision,
        pruned=pruned,
    )


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


def _diff(before: str, after: str, key: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        f"{key} (server)",
        f"{key} (file)",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).rstrip("\n")
