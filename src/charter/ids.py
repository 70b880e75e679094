"""Server-made identifiers: a prefix and a time-ordered unique suffix (ULID layout)."""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
SUFFIX = r"[0-9a-hjkmnp-tv-z]{26}"
DIRECTIVE_ID = re.compile(rf"dir_{SUFFIX}")
KEY_ID = re.compile(rf"key_{SUFFIX}")


def _suffix(now_ms: int, randomness: bytes) -> str:
    value = (now_ms << 80) | int.from_bytes(randomness, "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """`prefix_` + 26 characters: 48 bits of milliseconds, then 80 random bits."""
    return f"{prefix}_{_suffix(time.time_ns() // 1_000_000, os.urandom(10))}"


def new_directive_id() -> str:
    return new_id("dir")


def is_directive_id(value: str) -> bool:
    return DIRECTIVE_ID.fullmatch(value) is not None


def is_key_id(value: str) -> bool:
    return KEY_ID.fullmatch(value) is not None
