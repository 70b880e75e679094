"""Injection: the composed text placed into a chat request, in each provider's shape.

Pure. Each function takes the parts of a request that the text may go into and answers them
with the text placed per the injection mode (DESIGN §1, §9); whatever it does not place into
is returned as it came, every other field and item included. Empty text changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

from charter.domain.tree import InjectionMode
from charter.errors import InvalidRequest

MESSAGE_ROLE = "every message needs a string role"
ITEM_ROLE = "an input item's role, where it has one, must be a string"
_SYSTEM_ROLES = ("system", "developer")  # OpenAI Chat: a developer message is a system one


class InjectFormat(enum.StrEnum):
    """The request shape `inject` takes and answers."""

    OPENAI_CHAT = "openai-chat"  # {messages}
    OPENAI_RESPONSES = "openai-responses"  # {input, instructions?}
    ANTHROPIC = "anthropic"  # {system?, messages}


def inject_chat(
    messages: Sequence[Mapping[str, Any]], text: str, mode: InjectionMode
) -> list[dict[str, Any]]:
    """OpenAI Chat messages with `text` placed per `mode`."""
    check_roles(messages, MESSAGE_ROLE, required=True)
    out = [dict(message) for message in messages]
    if not text:
        return out
    if mode is InjectionMode.SYSTEM_FIRST:
        return [{"role": "system", "content": text}, *out]
    roles = _SYSTEM_ROLES if mode is InjectionMode.SYSTEM_APPEND else ("user",)
    for message in out:
        if message.get("role") in roles:
            append = mode is InjectionMode.SYSTEM_APPEND
            message["content"] = _join(message.get("content"), text, "text", append=append)
            return out
    if mode is InjectionMode.SYSTEM_APPEND:
        return [{"role": "system", "content": text}, *out]
    # user_prepend with no user message: the text becomes the last message, a user one.
    return [*out, {"role": "user", "content": text}]


def inject_responses(
    input: str | Sequence[Mapping[str, Any]],
    instructions: str | None,
    text: str,
    mode: InjectionMode,
) -> tuple[str | list[dict[str, Any]], str | None]:
    """OpenAI Responses `(input, instructions)` with `text` placed per `mode`.

    system_first and system_append go into `instructions` (before or after what is there);
    user_prepend goes before the first user input. Items without a role (function_call,
    function_call_output, reasoning, …) pass through untouched.
    """
    if not isinstance(input, str):
        check_roles(input, ITEM_ROLE, required=False)
    items: str | list[dict[str, Any]] = (
        input if isinstance(input, str) else [dict(item) for item in input]
    )
    if not text:
        return items, instructions
    if mode is InjectionMode.SYSTEM_FIRST:
        return items, text if not instructions else f"{text}\n\n{instructions}"
    if mode is InjectionMode.SYSTEM_APPEND:
        return items, text if not instructions else f"{instructions}\n\n{text}"
    if isinstance(items, str):  # a string input is one user message
        return (text if not items else f"{text}\n\n{items}"), instructions
    for item in items:
        if item.get("role") == "user":
            item["content"] = _join(item.get("content"), text, "input_text", append=False)
            return items, instructions
    part = {"type": "input_text", "text": text}
    return [*items, {"role": "user", "content": [part]}], instructions


def inject_anthropic(
    system: str | Sequence[Mapping[str, Any]] | None,
    messages: Sequence[Mapping[str, Any]],
    text: str,
    mode: InjectionMode,
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """Anthropic Messages `(system, messages)` with `text` placed per `mode`.

    system_first makes the text the first system block, system_append the last (a string
    system becomes one text block before or after it); user_prepend leads the first user
    message. Blocks keep their `cache_control` and every other field.
    """
    check_roles(messages, MESSAGE_ROLE, required=True)
    out = [dict(message) for message in messages]
    kept: str | list[dict[str, Any]] | None = (
        system if system is None or isinstance(system, str) else [dict(b) for b in system]
    )
    if not text:
        return kept, out
    block = {"type": "text", "text": text}
    if mode is not InjectionMode.USER_PREPEND:
        blocks = _system_blocks(kept)
        return ([block, *blocks] if mode is InjectionMode.SYSTEM_FIRST else [*blocks, block]), out
    for message in out:
        if message.get("role") == "user":
            message["content"] = _lead(message.get("content"), block)
            return kept, out
    return kept, [*out, {"role": "user", "content": text}]


def _system_blocks(system: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if isinstance(system, list):
        return system
    # Anthropic refuses an empty text block, so an empty string system makes none.
    return [{"type": "text", "text": system}] if system else []


def _lead(content: Any, block: dict[str, Any]) -> Any:
    """Anthropic user content with `block` leading it; tool results stay first, as the API
    requires them to come before any text of the message that answers the tool use."""
    if isinstance(content, list):
        at = 0
        while at < len(content) and _is_tool_result(content[at]):
            at += 1
        return [*content[:at], block, *content[at:]]
    return _join(content, block["text"], "text", append=False)


def _is_tool_result(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "tool_result"


def _join(content: Any, text: str, part_type: str, *, append: bool) -> Any:
    if isinstance(content, list):
        part = {"type": part_type, "text": text}
        return [*content, part] if append else [part, *content]
    existing = "" if content is None else str(content)
    if not existing:
        return text
    return f"{existing}\n\n{text}" if append else f"{text}\n\n{existing}"


def check_roles(items: Sequence[Mapping[str, Any]], detail: str, *, required: bool) -> None:
    """Every item has a string role (`required`), or has none or a string one."""
    for item in items:
        if (required or "role" in item) and not isinstance(item.get("role"), str):
            raise InvalidRequest(detail)
