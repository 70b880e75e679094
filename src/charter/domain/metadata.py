"""Directive metadata: a small JSON object with a reserved `charter.` namespace."""

from __future__ import annotations

from typing import Any

import msgspec

from charter.errors import InvalidRequest

MAX_METADATA_BYTES = 8 * 1024
RESERVED_PREFIX = "charter."


def validate_metadata(metadata: dict[str, Any]) -> None:
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
