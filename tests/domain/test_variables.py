"""Template variables (DESIGN §9), as properties: the rendering is a naive substitution, and
equal composition ids mean equal text whatever the values."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from charter.domain.composition import (
    TreeNode,
    Values,
    compose,
    placeholders,
    substitute,
)
from charter.domain.tree import InjectionMode, Level, Priority, Status

NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def naive(body: str, values: dict[str, str]) -> str:
    """The rule written out character by character: `{{{{` is `{{`; `{{name}}` is its value
    when it has one, else itself; anything else is itself."""
    out: list[str] = []
    i = 0
    while i < len(body):
        if body.startswith("{{{{", i):
            out.append("{{")
            i += 4
            continue
        if body.startswith("{{", i):
            j = i + 2
            while j < len(body) and body[j] in NAME_CHARS:
                j += 1
            name = body[i + 2 : j]
            if 1 <= len(name) <= 64 and name[0].isalpha() and body.startswith("}}", j):
                out.append(values.get(name, body[i : j + 2]))
                i = j + 2
                continue
        out.append(body[i])
        i += 1
    return "".join(out)


names = st.text(alphabet="abxy_1", min_size=1, max_size=3).filter(lambda n: n[0].isalpha())
pieces = st.one_of(
    st.sampled_from(["{", "}", "{{", "}}", "{{{{", " ", "a", "Z", "é", "_", "1"]),
    names.map(lambda n: "{{" + n + "}}"),
    st.just("{{" + "a" * 64 + "}}"),
    st.just("{{" + "a" * 65 + "}}"),
)
bodies = st.lists(pieces, max_size=20).map("".join)
value_maps = st.dictionaries(names, st.text(alphabet="{}ab ", max_size=6), max_size=4)


@given(bodies, value_maps)
def test_rendering_is_a_naive_substitution(body: str, values: dict[str, str]) -> None:
    assert substitute(body, values) == naive(body, values)


@given(bodies)
def test_placeholders_are_the_names_substitution_replaces(body: str) -> None:
    marked = {name: f"<{name}>" for name in placeholders(body)}
    assert substitute(body, marked) == naive(body, marked)
    assert set(placeholders(body)) == {n for n in marked if f"<{n}>" in substitute(body, marked)}


def test_a_value_is_never_scanned_again() -> None:
    assert substitute("{{a}}{{b}}", {"a": "{{b}}", "b": "x"}) == "{{b}}x"
    assert substitute("{{{{a}}", {"a": "x"}) == "{{a}}"
    assert substitute("{{{a}}", {"a": "x"}) == "{x"


# Version n of a node has the n-th body: the id names (directive, version), never the text.
VERSION_BODIES = {
    1: "plain",
    2: "Hi {{x}}",
    3: "{{x}} and {{y}} {{{{z}}",
    4: "{{team}}/{{agent_id}}",
}


def _tree(versions: tuple[int, int]) -> list[TreeNode]:
    def node(i: int, parent: str | None, level: Level, owner: str | None, v: int) -> TreeNode:
        return TreeNode(
            id=f"dir_{i}",
            parent_id=parent,
            level=level,
            status=Status.ACTIVE,
            priority=Priority.NORMAL,
            owner_agent_id=owner,
            injection_mode=InjectionMode.SYSTEM_FIRST,
            created_at=EPOCH,
            revision=1,
            version=v,
            title=("Blue" if v % 2 else "Red") if level is Level.TEAM else f"t{i}",
            body=VERSION_BODIES[v],
        )

    return [
        node(0, None, Level.REALM, None, 1),
        node(1, "dir_0", Level.TEAM, None, versions[0]),
        node(2, "dir_1", Level.AGENT, "a", versions[1]),
    ]


small_values = st.dictionaries(st.sampled_from(["x", "y"]), st.sampled_from(["1", "2"]))
setups = st.tuples(
    st.tuples(st.integers(1, 4), st.integers(1, 4)),
    small_values,
    small_values,
)


Setup = tuple[tuple[int, int], dict[str, str], dict[str, str]]


def _compose(setup: Setup) -> tuple[str, str]:
    versions, profile, defaults = setup
    nodes = _tree(versions)
    bodies = {n.id: n.body for n in nodes if n.body is not None}
    c = compose("a", nodes, bodies, Values(profile, defaults, "realm"))
    return c.composition_id, c.text


@given(setups, setups)
def test_equal_ids_mean_equal_text(one: Setup, two: Setup) -> None:
    id_one, text_one = _compose(one)
    id_two, text_two = _compose(two)
    assert (id_one == id_two) == (text_one == text_two)


def test_values_change_the_id_only_where_they_are_used() -> None:
    same = _compose(((1, 1), {"x": "1"}, {})), _compose(((1, 1), {"x": "2"}, {}))
    assert same[0] == same[1]
    differ = _compose(((2, 1), {"x": "1"}, {})), _compose(((2, 1), {}, {"x": "2"}))
    assert differ[0][0] != differ[1][0]
    assert "Hi 1" in differ[0][1]
    assert "Hi 2" in differ[1][1]
    profile_wins = _compose(((2, 1), {"x": "1"}, {"x": "2"}))
    assert profile_wins == differ[0]
