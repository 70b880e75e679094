"""Open streams and long polls, by the key that opened them.

Each is a `Watch` registered here under its key id, so that a key's revocation ends every one
of them (`revoke`), a stopping process ends them all (`close`), and one key cannot hold more
than `cap` at once (the next is refused with 429). One opened with a console session's cookie
is also registered under the session's id, so that the session's end ends it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from charter.cache.watch import Ending, Watch
from charter.errors import RateLimited

# What a refused stream is told to wait: an open stream lasts minutes, not milliseconds.
RETRY_AFTER_SECONDS = 5.0


def _drop(by_name: dict[str, set[Watch]], name: str, watch: Watch) -> None:
    watches = by_name.get(name)
    if watches is not None:
        watches.discard(watch)
        if not watches:
            del by_name[name]


class Holds:
    def __init__(self, cap: int = 0) -> None:
        self.cap = cap  # streams and long polls per key at once; 0: no cap
        self.closing = False
        self.on_refused: Callable[[], None] | None = None  # counts refusals (the metrics)
        self._by_key: dict[str, set[Watch]] = {}
        self._by_session: dict[str, set[Watch]] = {}
        self._count = 0

    @contextmanager
    def hold(self, key_id: str, session: str | None = None) -> Iterator[Watch]:
        """A watch held for `key_id` until the block ends; RateLimited past the cap.

        `session`: the console session whose cookie opened it, a second name it is held
        under, not counted against the cap, so that the session's end ends it too."""
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
        if session is not None:
            self._by_session.setdefault(session, set()).add(watch)
        try:
            yield watch
        finally:
            self._count -= 1
            _drop(self._by_key, key_id, watch)
            if session is not None:
                _drop(self._by_session, session, watch)

    def revoke(self, name: str) -> int:
        """End every stream and long poll of a revoked key, or of an ended console session
        (key ids and session ids never collide); returns how many."""
        held = self._by_key.get(name, ())
        for watch in held:
            watch.end(Ending.REVOKED)
        opened = self._by_session.get(name, ())
        for watch in opened:
            watch.end(Ending.SESSION_ENDED)
        return len(held) + len(opened)

    def close(self) -> None:
        """The process is stopping: end everything held, and whatever is opened from now."""
        self.closing = True
        for held in self._by_key.values():
            for watch in held:
                watch.end(Ending.SHUTDOWN)

    def key_ids(self) -> list[str]:
        """The keys and console sessions that hold something here (the re-check asks after
        them: services/keys.py)."""
        return [*self._by_key, *self._by_session]

    def __len__(self) -> int:
        return self._count  # a watch held under a session too counts once
