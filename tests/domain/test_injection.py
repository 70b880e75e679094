"""Injection in each provider's shape: the text goes where the mode says, and nothing else in
the request changes (DESIGN §9)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from charter.domain.injection import inject_anthropic, inject_chat, inject_responses
from charter.domain.tree import InjectionMode

TEXT = "# Charter\n\nShip it."
_words = st.text(alphabet="abc \n", min_size=0, max_size=8)
_part = st.fixed_dictionaries({"type": st.just("text"), "text": _words})
_content = st.one_of(_words, st.lists(_part, max_size=3))
_chat = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
            "content": _content,
        },
        optional={"name": st.just("n"), "cache_control": st.just({"type": "ephemeral"})},
    ),
    max_size=6,
)
_items = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "developer"]), "content": _content}
        ),
        st.fixed_dictionaries(
            {"type": st.just("function_call_output"), "call_id": st.just("c"), "output": _words}
        ),
    ),
    max_size=6,
)
_modes = st.sampled_from(list(InjectionMode))


def _without(content: Any, placed: Any) -> Any:
    """`placed` (content that had the text put in) with the text taken out again."""
    if isinstance(placed, list):
        return [p for p in placed if p.get("text") != TEXT or p not in _text_parts()]
    if placed == TEXT:
        return "" if content in ("", None) else content
    return placed.replace(f"{TEXT}\n\n", "", 1).replace(f"\n\n{TEXT}", "", 1)


def _text_parts() -> list[dict[str, str]]:
    return [{"type": t, "text": TEXT} for t in ("text", "input_text")]


def _changed(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[int]:
    return [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]


@given(_chat, _modes)
def test_chat_changes_one_message_or_adds_one(messages: list[dict[str, Any]], mode: Any) -> None:
    out = inject_chat(messages, TEXT, mode)
    if len(out) == len(messages) + 1:
        prepend = mode is InjectionMode.USER_PREPEND
        added = out[-1] if prepend else out[0]
        assert added == {"role": "user" if prepend else "system", "content": TEXT}
        rest = out[1:] if added is out[0] else out[:-1]
        assert rest == messages
        return
    (at,) = _changed(messages, out)
    roles = {"system", "developer"} if mode is InjectionMode.SYSTEM_APPEND else {"user"}
    assert mode is not InjectionMode.SYSTEM_FIRST
    assert out[at]["role"] in roles
    assert all(m["role"] not in roles for m in messages[:at])  # the first such message
    assert _without(messages[at]["content"], out[at]["content"]) == messages[at]["content"]
    assert {k: v for k, v in out[at].items() if k != "content"} == {
        k: v for k, v in messages[at].items() if k != "content"
    }


@given(_items, st.one_of(st.none(), _words), _modes)
def test_responses_keeps_every_item_it_does_not_place_into(
    items: list[dict[str, Any]], instructions: str | None, mode: Any
) -> None:
    out, placed = inject_responses(items, instructions, TEXT, mode)
    assert isinstance(out, list)
    if mode is not InjectionMode.USER_PREPEND:
        assert out == items
        if not instructions:
            assert placed == TEXT
        elif mode is InjectionMode.SYSTEM_FIRST:
            assert placed == f"{TEXT}\n\n{instructions}"
        else:
            assert placed == f"{instructions}\n\n{TEXT}"
        return
    assert placed == instructions
    if len(out) == len(items) + 1:
        assert out[:-1] == items
        assert out[-1] == {"role": "user", "content": [{"type": "input_text", "text": TEXT}]}
        assert all(item.get("role") != "user" for item in items)
        return
    (at,) = _changed(items, out)
    assert out[at]["role"] == "user"
    content = out[at]["content"]
    if isinstance(content, list):
        assert content[0] == {"type": "input_text", "text": TEXT}
        assert content[1:] == items[at]["content"]


@given(st.one_of(st.none(), _words, st.lists(_part, max_size=3)), _chat, _modes)
def test_anthropic_places_one_block_and_keeps_the_rest(
    system: Any, messages: list[dict[str, Any]], mode: Any
) -> None:
    messages = [m for m in messages if m["role"] in ("user", "assistant")]
    placed_system, out = inject_anthropic(system, messages, TEXT, mode)
    block = {"type": "text", "text": TEXT}
    if mode is InjectionMode.USER_PREPEND:
        assert placed_system == system
        assert len(out) in (len(messages), len(messages) + 1)
        return
    assert out == messages
    assert isinstance(placed_system, list)
    given_blocks = (
        system
        if isinstance(system, list)
        else ([{"type": "text", "text": system}] if system else [])
    )
    if mode is InjectionMode.SYSTEM_FIRST:
        assert placed_system == [block, *given_blocks]
    else:
        assert placed_system == [*given_blocks, block]


@given(_chat, _items, _modes)
def test_empty_text_changes_nothing(
    messages: list[dict[str, Any]], items: list[dict[str, Any]], mode: Any
) -> None:
    assert inject_chat(messages, "", mode) == messages
    assert inject_responses(items, "x", "", mode) == (items, "x")
    assert inject_anthropic("s", messages, "", mode) == ("s", messages)
