"""Open streams and long polls, by the key that opened them.

Each is a `Watch` registered here under its key id, so that a key's revocation ends every one
of them (`revoke`), a stopping process ends them all (`close`), and one key cannot hold more
than `cap` at once (the next is refused with 429).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from charter.cache.watch import Ending, Watch
from charter.errors import RateLimited

# What a refused stream is told to wait: an open stream lasts minutes, not milliseconds.
RETRY_AFTER_SECONDS = 5.0


class Holds:
    def __init__(self, cap: int = 0) -> None:
        self.cap = cap  # streams and long polls per key at once; 0: no cap
        self.closing = False
        self.on_refused: Callable[[], None] | None = None  # counts refusals (the metrics)
        self._by_key: dict[str, set[Watch]] = {}
        self._count = 0

    @contextmanager
    def hold(self, key_id: str, also: str | None = None) -> Iterator[Watch]:
        """A watch held for `key_id` until the block ends; RateLimited past the cap.

        `also`: a second name it is held under (a console session's id), not counted
        against the cap, so that revoking that name ends it too."""
        held = self._by_key.setdefault(key_id, set())
        if self.cap and len(held) >= self.cap:
            if not held:
                del self._by_key[key_id]
            if self.on_refused is not None:
                self.on_refused()
            raise RateLimited(
                RETRY_AFTER_SECONDS,
                detail=f"this key already holds {self.cap} streams and long polls",
            )
        watch = Watch()
        if self.closing:
            watch.end(Ending.SHUTDOWN)
        held.add(watch)
        self._count += 1
        if also is not None:
            self._by_key.setdefault(also, set()).add(watch)
        try:
            yield watch
        finally:
            self._count -= 1
            for name in (key_id, also):
                if name is None:
                    continue
                watches = self._by_key.get(name)
                if watches is not None:
                    watches.discard(watch)
                    if not watches:
                        del self._by_key[name]

    def revoke(self, key_id: str) -> int:
        """End every stream and long poll of a revoked key; returns how many."""
        held = self._by_key.get(key_id, ())
        for watch in held:
            watch.end(Ending.REVOKED)
        return len(held)

    def close(self) -> None:
        """The process is stopping: end everything held, and whatever is opened from now."""
        self.closing = True
        for held in self._by_key.values():
            for watch in held:
                watch.end(Ending.SHUTDOWN)

    def key_ids(self) -> list[str]:
        return list(self._by_key)

    def __len__(self) -> int:
        return self._count  # a watch held under a second name counts once
