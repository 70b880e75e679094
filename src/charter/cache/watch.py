"""A waiting reader's doorbell, and why a held reader must stop."""

from __future__ import annotations

import asyncio
import enum


class Ending(enum.Enum):
    """Why a held stream or long poll must end now."""

    REVOKED = "revoked"  # its key was revoked
    SESSION_ENDED = "session_ended"  # the console session it was opened under ended
    SHUTDOWN = "shutdown"  # the process is stopping


class Watch:
    """A waiting reader's doorbell; `wait` returns True when it rang, False on timeout.

    Ended (`end`), it rings at once on every later wait too: the holder checks `ended`.
    """

    __slots__ = ("_event", "ended")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.ended: Ending | None = None

    def ring(self) -> None:
        self._event.set()

    def end(self, why: Ending) -> None:
        if self.ended is None:
            self.ended = why
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        if self.ended is not None:
            return True
        # A timeout scope, not wait_for: no task per wait, which thousands of held watchers
        # pay for in memory, and a herd of them in CPU when one change wakes them all.
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        if self.ended is None:
            self._event.clear()
        return True
