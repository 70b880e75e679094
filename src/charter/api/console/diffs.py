"""Side-by-side diffs of two versions: rows of (left line, right line, kind), no I/O."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

Kind = Literal["same", "removed", "added", "changed"]


@dataclass(frozen=True, slots=True)
class Row:
    left: str | None  # None: nothing on this side
    right: str | None
    kind: Kind
    left_number: int | None = None
    right_number: int | None = None


def lines(title: str, body: str) -> list[str]:
    """A version as the diff shows it: the title, a blank line, the body's lines."""
    return [title, "", *body.splitlines()]


def side_by_side(old: list[str], new: list[str]) -> list[Row]:
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for offset in range(i2 - i1):
                rows.append(
                    Row(
                        old[i1 + offset], new[j1 + offset], "same", i1 + offset + 1, j1 + offset + 1
                    )
                )
            continue
        left, right = old[i1:i2], new[j1:j2]
        kind: Kind = "changed" if left and right else ("removed" if left else "added")
        for offset in range(max(len(left), len(right))):
            rows.append(
                Row(
                    left[offset] if offset < len(left) else None,
                    right[offset] if offset < len(right) else None,
                    kind,
                    i1 + offset + 1 if offset < len(left) else None,
                    j1 + offset + 1 if offset < len(right) else None,
                )
            )
    return rows
