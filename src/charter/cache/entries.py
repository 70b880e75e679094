"""Cache entries and their versioned wire envelope."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ENVELOPE = b"c1"
_HEAD = re.compile(rb"c1\|(\d{1,18})\|(cmp_[0-9a-f]{64}|-)\|")


@dataclass(frozen=True, slots=True)
class Entry:
    """A composed prompt, encoded for the wire, and the realm revision it was read at.

    `spans`, on entries this process composed (never on the wire): the length of each
    contributing layer's part of the text, in layer order, so a change to one layer's text
    can be spliced in without the other layers' bodies (services/refresh.py).
    """

    stamp: int
    composition_id: str
    payload: bytes
    spans: tuple[int, ...] | None = field(default=None, compare=False)


def encode(entry: Entry) -> bytes:
    return b"%s|%d|%s|%s" % (ENVELOPE, entry.stamp, entry.composition_id.encode(), entry.payload)


def tombstone(stamp: int) -> bytes:
    """Marks an agent's entry invalid as of `stamp`: no older entry may replace it."""
    return b"%s|%d|-|" % (ENVELOPE, stamp)


def decode(raw: bytes | None) -> Entry | None:
    """The entry, or None for a miss: absent, a tombstone, or anything unreadable."""
    if not raw:
        return None
    head = _HEAD.match(raw)
    if head is None or head.group(2) == b"-":
        return None
    payload = raw[head.end() :]
    if not payload:
        return None
    return Entry(int(head.group(1)), head.group(2).decode(), payload)
