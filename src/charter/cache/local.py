"""The process-local tier: a bounded dict of entries plus short-lived tombstones."""

from __future__ import annotations

import time
from dataclasses import dataclass

from charter.cache.entries import Entry

Key = tuple[str, str]  # (realm, agent)

# A tombstone only has to outlive reads that were already in flight when it was laid.
TOMBSTONE_SECONDS = 120.0


@dataclass(slots=True)
class _Tomb:
    stamp: int
    expires: float


class LocalTier:
    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[Key, Entry] = {}
        self._tombs: dict[Key, _Tomb] = {}
        self.enabled = True
        # Raised by every flush: an entry read before a flush may have missed an invalidation
        # published while this process was not listening, so it is refused (see `put`).
        self.epoch = 0

    def get(self, key: Key) -> Entry | None:
        if not self.enabled:
            return None
        return self._entries.get(key)

    def put(self, key: Key, entry: Entry, epoch: int | None = None) -> bool:
        """Store unless an invalidation newer than the entry has been seen, or the tier was
        flushed since the reader began (`epoch`: the value of `self.epoch` it started at)."""
        if epoch is not None and epoch != self.epoch:
            return False
        if not self.enabled or entry.stamp < self._floor(key):
            return False
        current = self._entries.get(key)
        if current is not None and current.stamp > entry.stamp:
            return False
        if len(self._entries) >= self.max_entries and key not in self._entries:
            self._entries.pop(next(iter(self._entries)))  # evict the oldest insertion
        self._entries[key] = entry
        return True

    def invalidate(self, realm: str, agents: list[str], stamp: int) -> None:
        expires = time.monotonic() + TOMBSTONE_SECONDS
        if len(self._tombs) > 4 * self.max_entries:
            self._expire_tombs()
        for agent in agents:
            key = (realm, agent)
            entry = self._entries.get(key)
            if entry is not None and entry.stamp < stamp:
                del self._entries[key]
            tomb = self._tombs.get(key)
            if tomb is None or tomb.stamp < stamp:
                self._tombs[key] = _Tomb(stamp, expires)

    def flush(self) -> None:
        self.epoch += 1
        self._entries.clear()

    def _floor(self, key: Key) -> int:
        tomb = self._tombs.get(key)
        if tomb is None:
            return 0
        if tomb.expires < time.monotonic():
            del self._tombs[key]
            return 0
        return tomb.stamp

    def _expire_tombs(self) -> None:
        now = time.monotonic()
        for key in [k for k, t in self._tombs.items() if t.expires < now]:
            del self._tombs[key]

    def __len__(self) -> int:
        return len(self._entries)
