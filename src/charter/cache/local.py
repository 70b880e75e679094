"""The process-local tier: a bounded dict of entries plus short-lived tombstones."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from charter.cache.entries import Entry

Key = tuple[str, str]  # (realm, agent)


class Gate(Protocol):
    """Which realms' changes this process hears (on Redis Cluster, one subscription each)."""

    def open(self, realm: str) -> bool:
        """Whether the realm's changes are heard; if not, asks to hear them from now on."""
        ...


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
        # None: every realm's changes are heard (one subscription for all). Otherwise entries
        # of a realm are served and stored only while the gate is open for it.
        self.gate: Gate | None = None
        self._held: Counter[str] = Counter()  # entries per realm
        # Raised by every flush: an entry read before a flush may have missed an invalidation
        # published while this process was not listening, so it is refused (see `put`).
        self.epoch = 0

    def get(self, key: Key) -> Entry | None:
        if not self.enabled or (self.gate is not None and not self.gate.open(key[0])):
            return None
        return self._entries.get(key)

    def put(self, key: Key, entry: Entry, epoch: int | None = None) -> bool:
        """Store unless an invalidation newer than the entry has been seen, or the tier was
        flushed since the reader began (`epoch`: the value of `self.epoch` it started at)."""
        if epoch is not None and epoch != self.epoch:
            return False
        if not self.enabled or entry.stamp < self._floor(key):
            return False
        if self.gate is not None and not self.gate.open(key[0]):
            return False
        current = self._entries.get(key)
        if current is not None and current.stamp > entry.stamp:
            return False
        if current is None:
            if len(self._entries) >= self.max_entries:
                oldest = next(iter(self._entries))  # evict the oldest insertion
                self._entries.pop(oldest)
                self._release(oldest[0])
            self._held[key[0]] += 1
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
                self._release(realm)
            tomb = self._tombs.get(key)
            if tomb is None or tomb.stamp < stamp:
                self._tombs[key] = _Tomb(stamp, expires)

    def flush(self) -> None:
        self.epoch += 1
        self._entries.clear()
        self._held.clear()

    def forget(self, realms: set[str]) -> None:
        """Drop every entry of these realms (their changes went unheard for a while), and
        refuse what readers that began before now bring back."""
        self.epoch += 1
        if not realms:
            return
        for key in [k for k in self._entries if k[0] in realms]:
            del self._entries[key]
        for realm in realms:
            self._held.pop(realm, None)

    def holds(self, realm: str) -> bool:
        """Whether any entry of the realm is held."""
        return self._held.get(realm, 0) > 0

    def _release(self, realm: str) -> None:
        left = self._held[realm] - 1
        if left > 0:
            self._held[realm] = left
        else:
            self._held.pop(realm, None)

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
