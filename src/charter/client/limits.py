"""The limits the server puts on a directive, as the client knows them.

The client is installed without the server, so it cannot import `charter.domain` or
`charter.api.wire`; these are their values, written once here for the CLI's checks before it
sends anything (`charter apply --dry-run`). tests/client/test_limits.py fails when one of them
differs from the server's.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

MAX_TITLE_CHARS = 256  # domain/versions.py
MAX_BODY_BYTES = 32_768  # of UTF-8; domain/versions.py
MAX_METADATA_BYTES = 8 * 1024  # as JSON; domain/metadata.py
RESERVED_METADATA_PREFIX = "charter."  # domain/metadata.py
DEFAULT_MAX_DEPTH = 16  # levels from a root; domain/tree.py (a server may set its own)

# api/wire.py; the lookahead refuses a final newline, which Python's `$` would let through.
_END = r"$(?!\n)"
KEY_PATTERN = r"^[a-z0-9][a-z0-9._/-]{0,127}" + _END
AGENT_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}" + _END
_KEY = re.compile(KEY_PATTERN)
_AGENT_ID = re.compile(AGENT_ID_PATTERN)


def title_problems(title: str) -> list[str]:
    problems = []
    if not title.strip():
        problems.append("title must not be empty")
    if len(title) > MAX_TITLE_CHARS:
        problems.append(f"title is {len(title)} characters; the limit is {MAX_TITLE_CHARS}")
    if "\n" in title or "\r" in title:
        problems.append("title must be one line")
    if "\x00" in title:
        problems.append("title must not contain NUL bytes")
    return problems


def body_problems(body: str) -> list[str]:
    problems = []
    if not body.strip():
        problems.append("body must not be empty")
    if "\x00" in body:
        problems.append("body must not contain NUL bytes")
    size = len(body.encode("utf-8", errors="surrogatepass"))
    if size > MAX_BODY_BYTES:
        problems.append(f"body is {size} bytes of UTF-8; the limit is {MAX_BODY_BYTES}")
    return problems


def key_problems(key: str) -> list[str]:
    if _KEY.match(key):
        return []
    return [
        f"key {key[:40]!r} must be 1 to 128 of a-z 0-9 . _ / - (lower case), starting with a "
        "letter or digit"
    ]


def agent_id_problems(agent_id: str) -> list[str]:
    if _AGENT_ID.match(agent_id):
        return []
    return [f"owner_agent_id {agent_id[:40]!r} must be 1 to 128 of A-Z a-z 0-9 . _ : @ -"]


def metadata_problems(metadata: dict[str, Any]) -> list[str]:
    problems = []
    reserved = sorted(k for k in metadata if k.startswith(RESERVED_METADATA_PREFIX))
    if reserved:
        problems.append(
            f"metadata keys starting with {RESERVED_METADATA_PREFIX!r} are reserved: "
            + ", ".join(repr(k) for k in reserved[:5])
        )
    try:
        encoded = msgspec.json.encode(metadata)
    except (TypeError, ValueError, OverflowError) as exc:
        return [*problems, f"metadata cannot be sent as JSON: {exc}"]
    if _has_nul(metadata):
        problems.append("metadata must not contain NUL characters")
    if len(encoded) > MAX_METADATA_BYTES:
        problems.append(
            f"metadata is {len(encoded)} bytes as JSON; the limit is {MAX_METADATA_BYTES}"
        )
    return problems


def _has_nul(value: Any) -> bool:
    stack = [value]  # iterative: a deeply nested document cannot exhaust the stack
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
