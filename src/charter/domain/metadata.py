"""Directive metadata: a small JSON object with a reserved `charter.` namespace.

Also the one nesting limit for every free-form JSON value the API accepts (metadata, the
messages to inject, and whatever JSON field comes next): see `check_json_depth`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from charter.errors import InvalidRequest

MAX_METADATA_BYTES = 8 * 1024
RESERVED_PREFIX = "charter."
# Arrays and objects nested in one JSON value, the value itself counting as 1. Without a
# limit, nesting the decoder still accepts (about 950 levels) broke further in: the JSON
# encoding for the database hit Python's recursion limit and answered 500 (issue 11). 32 is
# far more than any real metadata or chat message needs, and far below every such limit.
MAX_JSON_DEPTH = 32


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a decoded JSON value (a scalar: 0)."""
    # Iterative, so a deeply nested document cannot exhaust the stack.
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_json_depth(value: Any, field: str) -> None:
    """Refuse a JSON value nested deeper than MAX_JSON_DEPTH (400 invalid-request)."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise InvalidRequest(
            f"{field} nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        )


def validate_metadata(metadata: dict[str, Any]) -> None:
    check_json_depth(metadata, "metadata")
    reserved = sorted(k for k in metadata if k.startswith(RESERVED_PREFIX))
    if reserved:
        raise InvalidRequest(f"metadata keys starting with {RESERVED_PREFIX!r} are reserved")
    if _has_nul(metadata):
        raise InvalidRequest("metadata must not contain NUL characters")
    size = len(msgspec.json.encode(metadata))
    if size > MAX_METADATA_BYTES:
        raise InvalidRequest(f"metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")


def _has_nul(value: Any) -> bool:
    # Iterative so a deeply nested document cannot exhaust the stack.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
