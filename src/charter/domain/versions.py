"""Versioned content: validation, hashing, no-op detection and diffs."""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass

from charter.errors import ContentTooLarge, InvalidRequest

MAX_TITLE_CHARS = 256
MAX_BODY_BYTES = 32_768


@dataclass(frozen=True, slots=True)
class Content:
    """The versioned part of a directive."""

    title: str
    body: str

    @property
    def hash(self) -> str:
        return content_hash(self.title, self.body)


def validate_title(title: str) -> None:
    if not title.strip():
        raise InvalidRequest("title must not be empty")
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidRequest(f"title must be at most {MAX_TITLE_CHARS} characters")
    if "\n" in title or "\r" in title:
        raise InvalidRequest("title must be one line")
    if "\x00" in title:
        raise InvalidRequest("title must not contain NUL bytes")


def validate_body(body: str) -> None:
    if not body.strip():
        raise InvalidRequest("body must not be empty")
    if "\x00" in body:
        raise InvalidRequest("body must not contain NUL bytes")
    size = len(body.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise ContentTooLarge(f"body is {size} bytes of UTF-8; the limit is {MAX_BODY_BYTES}")


def content_hash(title: str, body: str) -> str:
    """`sha256:` + hex over the canonical JSON of the content."""
    canonical = json.dumps(
        {"body": body, "title": title}, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def is_noop(current: Content | None, proposed: Content) -> bool:
    """An update equal to the active content makes no version."""
    return current is not None and current == proposed


def unified_diff(old: Content, new: Content, old_label: str, new_label: str) -> str:
    """A unified diff of two versions: the title as the first line, then the body."""
    old_lines = [f"title: {old.title}\n", "\n", *_lines(old.body)]
    new_lines = [f"title: {new.title}\n", "\n", *_lines(new.body)]
    return "".join(difflib.unified_diff(old_lines, new_lines, old_label, new_label))


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines
