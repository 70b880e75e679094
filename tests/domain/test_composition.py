"""Composition properties: the fold over ancestry, the id, and injection into messages."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from charter.domain.composition import Layer, TreeNode, compose, composition_id
from charter.domain.injection import inject_chat as inject
from charter.domain.tree import InjectionMode, Level, Priority, Status

AGENTS = ["a", "b", "c"]
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def forests(draw: st.DrawFn) -> list[TreeNode]:
    """Random forests: node i's parent is an earlier node (or none), so there is no cycle."""
    size = draw(st.integers(min_value=1, max_value=14))
    nodes: list[TreeNode] = []
    for i in range(size):
        parent = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        has_text = draw(st.booleans()) or draw(st.booleans())
        nodes.append(
            TreeNode(
                id=f"dir_{i:02d}",
                parent_id=None if parent is None else f"dir_{parent:02d}",
                level=Level.REALM if parent is None else Level.AGENT,
                status=draw(st.sampled_from([Status.ACTIVE] * 4 + list(Status))),
                priority=draw(st.sampled_from(list(Priority))),
                owner_agent_id=draw(st.sampled_from([None, *AGENTS])),
                injection_mode=draw(st.sampled_from(list(InjectionMode))),
                created_at=EPOCH + timedelta(seconds=draw(st.integers(0, 3))),
                revision=draw(st.integers(1, 5)),
                version=draw(st.integers(1, 3)) if has_text else None,
                title=f"title {i}" if has_text else None,
                body=f"body {i}" if has_text else None,
            )
        )
    return nodes


_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


def reference(agent: str, nodes: list[TreeNode]) -> tuple[str, list[str], InjectionMode]:
    """The rules of DESIGN §1 written out naively: text, layer ids, mode."""
    by_id = {n.id: n for n in nodes}

    def ancestry(node: TreeNode) -> list[TreeNode]:
        return [node] if node.parent_id is None else [node, *ancestry(by_id[node.parent_id])]

    chosen: dict[str, int] = {}
    owned_depths: list[tuple[int, TreeNode]] = []
    for node in nodes:
        if node.owner_agent_id != agent:
            continue
        chain = ancestry(node)
        if all(link.status is Status.ACTIVE for link in chain):
            for position, link in enumerate(chain):
                chosen[link.id] = len(chain) - position
            if node.version is not None:
                owned_depths.append((len(chain), node))
    order = sorted(
        chosen, key=lambda i: (chosen[i], _RANK[by_id[i].priority], by_id[i].created_at, i)
    )
    text = "\n\n".join(
        "#" * min(chosen[i], 6) + f" {by_id[i].title}\n\n{by_id[i].body}"
        for i in order
        if by_id[i].version is not None
    )
    mode = InjectionMode.SYSTEM_FIRST
    if owned_depths:
        deepest = max(depth for depth, _ in owned_depths)
        ties = [n for depth, n in owned_depths if depth == deepest]
        mode = min(ties, key=lambda n: (_RANK[n.priority], n.created_at, n.id)).injection_mode
    return text, order, mode


@given(forests(), st.sampled_from(AGENTS))
def test_composition_is_the_fold_over_each_owned_nodes_ancestry(
    nodes: list[TreeNode], agent: str
) -> None:
    bodies = {n.id: n.body for n in nodes if n.body is not None}
    result = compose(agent, nodes, bodies)
    text, order, mode = reference(agent, nodes)
    assert result.text == text
    assert [layer.directive_id for layer in result.layers] == order
    assert result.injection_mode is mode


@given(forests(), st.sampled_from(AGENTS))
def test_equal_ids_mean_equal_text(nodes: list[TreeNode], agent: str) -> None:
    bodies = {n.id: n.body for n in nodes if n.body is not None}
    first = compose(agent, nodes, bodies)
    shuffled = compose(agent, list(reversed(nodes)), bodies)
    assert first.composition_id == shuffled.composition_id
    assert first.text == shuffled.text
    assert first.composition_id == composition_id(first.injection_mode, first.layers)


def test_a_cycle_in_the_data_neither_hangs_nor_qualifies() -> None:
    a = TreeNode(
        "dir_a",
        "dir_b",
        Level.AGENT,
        Status.ACTIVE,
        Priority.NORMAL,
        "x",
        InjectionMode.SYSTEM_FIRST,
        EPOCH,
        1,
        1,
        "A",
        "a",
    )
    b = TreeNode(
        "dir_b",
        "dir_a",
        Level.AGENT,
        Status.ACTIVE,
        Priority.NORMAL,
        None,
        InjectionMode.SYSTEM_FIRST,
        EPOCH,
        1,
        1,
        "B",
        "b",
    )
    result = compose("x", [a, b], {"dir_a": "a", "dir_b": "b"})
    assert result.text == ""
    assert result.layers == ()


MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello", "name": "op"},
    {"role": "assistant", "content": "Hi"},
    {"role": "user", "content": "Again"},
]


def test_system_first_puts_a_new_system_message_in_front() -> None:
    out = inject(MESSAGES, "PROMPT", InjectionMode.SYSTEM_FIRST)
    assert out == [{"role": "system", "content": "PROMPT"}, *MESSAGES]


def test_system_append_appends_to_the_first_system_message() -> None:
    out = inject(MESSAGES, "PROMPT", InjectionMode.SYSTEM_APPEND)
    assert out[0] == {"role": "system", "content": "You are terse.\n\nPROMPT"}
    assert out[1:] == MESSAGES[1:]


def test_system_append_without_a_system_message_adds_one_in_front() -> None:
    out = inject(MESSAGES[1:], "PROMPT", InjectionMode.SYSTEM_APPEND)
    assert out == [{"role": "system", "content": "PROMPT"}, *MESSAGES[1:]]


def test_user_prepend_prepends_to_the_first_user_message_only() -> None:
    out = inject(MESSAGES, "PROMPT", InjectionMode.USER_PREPEND)
    assert out[1] == {"role": "user", "content": "PROMPT\n\nHello", "name": "op"}
    assert out[3] == MESSAGES[3]
    assert out[0] == MESSAGES[0]


def test_empty_text_leaves_the_messages_unchanged() -> None:
    for mode in InjectionMode:
        assert inject(MESSAGES, "", mode) == MESSAGES


def test_inject_never_mutates_its_input() -> None:
    before = [dict(m) for m in MESSAGES]
    inject(MESSAGES, "PROMPT", InjectionMode.USER_PREPEND)
    assert before == MESSAGES


@given(
    st.lists(st.tuples(st.text(max_size=12), st.integers(0, 2**31), st.integers(1, 16)), max_size=6)
)
def test_the_id_hashes_the_json_that_json_dumps_writes(pairs: list[tuple[str, int, int]]) -> None:
    # Recorded ids are resolved forever: the canonical JSON must never change, whatever
    # encoder writes it (ids, numbers and any character in a string).
    layers = [
        Layer(directive_id=d, level=Level.AGENT, depth=depth, title="t", version=v, revision=1)
        for d, v, depth in pairs
    ]
    key = [1, "system_first", [[d, v, depth] for d, v, depth in pairs]]
    canonical = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
    expected = "cmp_" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert composition_id(InjectionMode.SYSTEM_FIRST, layers) == expected
