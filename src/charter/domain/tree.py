"""The goal tree's rules: levels, hierarchy, status transitions, and guarded walks.

The vocabulary of a directive (levels, statuses, priorities, injection modes) is defined here
and only here; every other list of these words is derived from these enums, or checked
against them by a test (tests/domain/test_vocabulary.py). See docs/architecture.md.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from charter.errors import (
    CycleDetected,
    HasOpenChildren,
    InvalidHierarchy,
    InvalidTransition,
)

DEFAULT_MAX_DEPTH = 16


class Level(enum.StrEnum):
    REALM = "realm"
    TEAM = "team"
    AGENT = "agent"


class Status(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Completed or cancelled: only a reopen leaves it."""
        return self in TERMINAL

    @property
    def open(self) -> bool:
        return self not in TERMINAL


# The one list of terminal statuses; every other status is open.
TERMINAL: frozenset[Status] = frozenset({Status.COMPLETED, Status.CANCELLED})
OPEN: frozenset[Status] = frozenset(Status) - TERMINAL


class Priority(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Sort rank: critical first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


class InjectionMode(enum.StrEnum):
    SYSTEM_FIRST = "system_first"
    SYSTEM_APPEND = "system_append"
    USER_PREPEND = "user_prepend"


_ALLOWED_PARENTS: Mapping[Level, frozenset[Level]] = {
    Level.REALM: frozenset(),
    Level.TEAM: frozenset({Level.REALM, Level.TEAM}),
    Level.AGENT: frozenset({Level.REALM, Level.TEAM, Level.AGENT}),
}


def check_parent_level(level: Level, parent_level: Level | None) -> None:
    """Refuse a parent whose level may not hold a node of `level` (None: a root)."""
    if parent_level is None:
        if level is not Level.REALM:
            raise InvalidHierarchy(f"{_an(level)} node needs a parent")
        return
    if parent_level not in _ALLOWED_PARENTS[level]:
        raise InvalidHierarchy(f"{_an(level)} node cannot be placed under {_an(parent_level)} node")


def check_depth(parent_depth: int, subtree_height: int, max_depth: int) -> None:
    """Refuse placing a subtree `subtree_height` deep under a parent at `parent_depth`."""
    if parent_depth + subtree_height > max_depth:
        raise InvalidHierarchy(f"the tree would be deeper than {max_depth} levels")


def check_transition(current: Status, target: Status, *, reopen: bool) -> None:
    """Refuse a status change the status rules do not allow; same-to-same is not a change."""
    if current is target:
        return
    if current.terminal:
        if target is Status.ACTIVE and reopen:
            return
        hint = " (set reopen: true)" if target is Status.ACTIVE else ""
        raise InvalidTransition(f"cannot move a {current} node to {target}{hint}")
    # active <-> paused, and active/paused -> completed | cancelled.


def check_children_closed(target: Status, open_descendants: int, *, cascade: bool) -> None:
    """Completing or cancelling needs every descendant terminal, unless cascading."""
    if target.terminal and open_descendants and not cascade:
        raise HasOpenChildren(
            f"{open_descendants} descendant(s) are still open; pass cascade: true to "
            f"{_VERB[target]} them too"
        )


_VERB = {Status.COMPLETED: "complete", Status.CANCELLED: "cancel"}


def _an(word: str) -> str:
    """The word with its indefinite article: "an agent", "a team"."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


@dataclass(frozen=True, slots=True)
class Link:
    """One node's place in the tree: enough to walk it."""

    id: str
    parent_id: str | None


def walk_up(start: str, parents: Mapping[str, str | None], max_steps: int) -> list[str]:
    """The chain from `start` to its root, following `parents`.

    Stops at a missing node, at a node already seen (corrupt data with a cycle) or after
    `max_steps` nodes, so a walk always ends.
    """
    chain: list[str] = []
    seen: set[str] = set()
    node: str | None = start
    while node is not None and node not in seen and len(chain) < max_steps:
        if node not in parents:
            break
        seen.add(node)
        chain.append(node)
        node = parents[node]
    return chain


def would_cycle(node: str, new_parent: str, parents: Mapping[str, str | None], cap: int) -> bool:
    """True if making `new_parent` the parent of `node` would close a cycle."""
    return node in walk_up(new_parent, parents, cap)


def check_move(
    node: str, new_parent: str | None, parents: Mapping[str, str | None], cap: int
) -> None:
    if new_parent is not None and would_cycle(node, new_parent, parents, cap):
        raise CycleDetected("the new parent is the node itself or one of its descendants")


def children_index(links: Iterable[Link]) -> dict[str | None, list[str]]:
    """Parent id -> child ids, in the order given."""
    index: dict[str | None, list[str]] = {}
    for link in links:
        index.setdefault(link.parent_id, []).append(link.id)
    return index


def walk_down(
    root: str, children: Mapping[str | None, list[str]], max_depth: int
) -> list[tuple[str, int]]:
    """(id, depth below root, root = 0) for the subtree, pre-order, cycle- and depth-guarded."""
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if node in seen or depth >= max_depth:
            continue
        seen.add(node)
        out.append((node, depth))
        stack.extend((child, depth + 1) for child in reversed(children.get(node, [])))
    return out
