"""Properties of the tree rules: levels, status transitions, and walks that always end."""

from __future__ import annotations

import itertools
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charter.domain import tree
from charter.domain.tree import Level, Link, Status
from charter.errors import CycleDetected, HasOpenChildren, InvalidHierarchy, InvalidTransition

# The hierarchy rules of DESIGN.md §1, written out pair by pair.
ALLOWED_PLACEMENTS = {
    (Level.REALM, None),
    (Level.TEAM, Level.REALM),
    (Level.TEAM, Level.TEAM),
    (Level.AGENT, Level.REALM),
    (Level.AGENT, Level.TEAM),
    (Level.AGENT, Level.AGENT),
}

levels = st.sampled_from(Level)
statuses = st.sampled_from(Status)

# Small id spaces so random parent maps are dense with shared ancestors and cycles; "ghost"
# ids appear as parents but never as keys: a parent pointing at a missing row.
node_ids = st.sampled_from([f"n{i}" for i in range(8)])
parent_ids = st.one_of(st.none(), node_ids, st.sampled_from(["ghost1", "ghost2"]))
parent_maps = st.dictionaries(node_ids, parent_ids)


@given(levels, st.one_of(st.none(), levels))
def test_check_parent_level_allows_exactly_the_hierarchy_rules(
    level: Level, parent: Level | None
) -> None:
    if (level, parent) in ALLOWED_PLACEMENTS:
        tree.check_parent_level(level, parent)
    else:
        with pytest.raises(InvalidHierarchy):
            tree.check_parent_level(level, parent)


@given(st.integers(0, 40), st.integers(1, 40), st.integers(1, 40))
def test_check_depth_refuses_exactly_what_exceeds_the_limit(
    parent_depth: int, height: int, limit: int
) -> None:
    if parent_depth + height <= limit:
        tree.check_depth(parent_depth, height, limit)
    else:
        with pytest.raises(InvalidHierarchy):
            tree.check_depth(parent_depth, height, limit)


def _transition_allowed(current: Status, target: Status, reopen: bool) -> bool:
    if current is target:
        return True
    if current in tree.OPEN:
        return True  # open <-> open (active, paused), and open -> terminal
    return target is Status.ACTIVE and reopen  # a terminal node is only reopened


@given(statuses, statuses, st.booleans())
def test_check_transition_follows_the_status_rules(
    current: Status, target: Status, reopen: bool
) -> None:
    if _transition_allowed(current, target, reopen):
        tree.check_transition(current, target, reopen=reopen)
    else:
        with pytest.raises(InvalidTransition):
            tree.check_transition(current, target, reopen=reopen)


@pytest.mark.parametrize("terminal", [Status.COMPLETED, Status.CANCELLED])
def test_a_terminal_node_needs_reopen_to_become_active(terminal: Status) -> None:
    with pytest.raises(InvalidTransition, match="reopen"):
        tree.check_transition(terminal, Status.ACTIVE, reopen=False)
    tree.check_transition(terminal, Status.ACTIVE, reopen=True)
    # reopen is a way back to active, not a licence for any other change
    with pytest.raises(InvalidTransition):
        tree.check_transition(terminal, Status.PAUSED, reopen=True)


@given(statuses, st.integers(0, 5), st.booleans())
def test_check_children_closed_needs_cascade_only_to_close_over_open_children(
    target: Status, open_descendants: int, cascade: bool
) -> None:
    if target.terminal and open_descendants > 0 and not cascade:
        with pytest.raises(HasOpenChildren):
            tree.check_children_closed(target, open_descendants, cascade=cascade)
    else:
        tree.check_children_closed(target, open_descendants, cascade=cascade)


@given(parent_maps, node_ids, st.integers(1, 20))
def test_walk_up_follows_parents_never_repeats_and_stops_for_a_reason(
    parents: dict[str, str | None], start: str, max_steps: int
) -> None:
    chain = tree.walk_up(start, parents, max_steps)

    assert len(chain) == len(set(chain))
    assert len(chain) <= max_steps
    if start not in parents:
        assert chain == []
        return
    assert chain[0] == start
    for child, parent in itertools.pairwise(chain):
        assert parents[child] == parent
    following = parents[chain[-1]]
    assert (
        following is None
        or following not in parents
        or following in chain
        or len(chain) == max_steps
    )


def _reachable_by_iteration(node: str, new_parent: str, parents: dict[str, str | None]) -> bool:
    """Naive: apply the parent function n+1 times, no visited set; a path longer than the map
    has already repeated a node, so that is enough to see every ancestor."""
    current: str | None = new_parent
    for _ in range(len(parents) + 1):
        if current is None or current not in parents:
            return False
        if current == node:
            return True
        current = parents[current]
    return False


@given(parent_maps, node_ids, node_ids)
def test_would_cycle_agrees_with_a_naive_reference(
    parents: dict[str, str | None], node: str, new_parent: str
) -> None:
    cap = len(parents) + 1
    expected = _reachable_by_iteration(node, new_parent, parents)
    assert tree.would_cycle(node, new_parent, parents, cap) is expected


@given(parent_maps, node_ids)
def test_check_move_refuses_a_node_under_itself_or_its_descendants(
    parents: dict[str, str | None], node: str
) -> None:
    parents = {**parents, node: parents.get(node)}
    with pytest.raises(CycleDetected):
        tree.check_move(node, node, parents, 64)
    for descendant, _ in tree.walk_down(node, _children_of(parents), 64):
        with pytest.raises(CycleDetected):
            tree.check_move(node, descendant, parents, 64)
    tree.check_move(node, None, parents, 64)  # to the root: never a cycle


def _children_of(parents: dict[str, str | None]) -> dict[str | None, list[str]]:
    return tree.children_index(Link(node, parent) for node, parent in sorted(parents.items()))


def _bfs_depths(
    root: str, children: dict[str | None, list[str]], max_depth: int
) -> set[tuple[str, int]]:
    """Naive reference: breadth-first distances from root, each node once."""
    depths = {root: 0}
    queue = deque([root])
    while queue:
        node = queue.popleft()
        for child in children.get(node, []):
            if child not in depths:
                depths[child] = depths[node] + 1
                queue.append(child)
    return {(node, depth) for node, depth in depths.items() if depth < max_depth}


@given(parent_maps, node_ids, st.integers(1, 12))
def test_walk_down_visits_each_descendant_once_within_the_depth_cap(
    parents: dict[str, str | None], root: str, max_depth: int
) -> None:
    children = _children_of(parents)
    walked = tree.walk_down(root, children, max_depth)

    ids = [node for node, _ in walked]
    assert len(ids) == len(set(ids))
    assert walked[0] == (root, 0)
    assert all(depth < max_depth for _, depth in walked)
    # Every parent has exactly one parent pointer, so the path from root is unique and a
    # depth-first walk finds the same depths as a breadth-first one.
    assert set(walked) == _bfs_depths(root, children, max_depth)


@given(
    st.dictionaries(
        node_ids, st.lists(st.one_of(node_ids, st.just("ghost1")), max_size=6), max_size=8
    ),
    node_ids,
    st.integers(1, 12),
)
def test_walk_down_ends_on_any_children_map_even_with_repeats_and_cycles(
    children: dict[str | None, list[str]], root: str, max_depth: int
) -> None:
    walked = tree.walk_down(root, children, max_depth)

    ids = [node for node, _ in walked]
    assert len(ids) == len(set(ids))
    assert walked[0] == (root, 0)
    seen_depth = dict(walked)
    for node, depth in walked[1:]:
        # pre-order: each node is reached from a node already walked, one level up
        assert any(
            parent is not None and seen_depth.get(parent) == depth - 1 and node in kids
            for parent, kids in children.items()
        )


def test_walk_up_on_a_self_loop_returns_the_node_once() -> None:
    assert tree.walk_up("a", {"a": "a"}, 100) == ["a"]


def test_children_index_keeps_the_given_order() -> None:
    links = [Link("b", "r"), Link("a", "r"), Link("r", None), Link("c", "b")]
    assert tree.children_index(links) == {"r": ["b", "a"], None: ["r"], "b": ["c"]}
