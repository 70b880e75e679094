"""The due-work loop: every process runs one; it does what the timers say is due (ADR 0008).

A timer is a lease's expiry or a schedule's time. The loop wakes at the earliest due time it
knows of, at the latest every `poll_seconds` (timers another process wrote), or at once when
this process writes one. For each realm with due timers it opens one transaction, takes the
realm lock, then the due timers, runs each one's handler and deletes the timer, and commits:
the work and the end of its timer are one commit. A second process waits for the realm lock
and then finds the timers gone; a process killed mid-way rolls back, and the work is still
due for whoever comes next, this process after a restart included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import utcnow
from charter.db.session import Database
from charter.store import realms, timers

log = logging.getLogger("charter.due_work")

# A handler does the work of one timer under the realm lock. None: done (the timer goes);
# a time: not due after all (a lease renewed meanwhile), wait for it.
Handler = Callable[[AsyncConnection, str, str, datetime], Awaitable[datetime | None]]
Write = Callable[[str], AbstractAsyncContextManager[AsyncConnection]]

POLL_SECONDS = 0.5
_REALMS_PER_ROUND = 50
_TIMERS_PER_REALM = 200
_ROUNDS = 20


class DueWork:
    def __init__(
        self,
        db: Database,
        write: Write,
        handlers: Mapping[str, Handler],
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.db = db
        self.write = write
        self.handlers = dict(handlers)
        self.poll_seconds = poll_seconds
        self._bell = asyncio.Event()

    def poke(self) -> None:
        """A timer was written here: look again now, not at the next poll."""
        self._bell.set()

    async def run(self) -> None:
        while True:
            self._bell.clear()
            try:
                wait = await self.run_due()
            except Exception as exc:  # the database went away: try again at the next poll
                log.warning("due work failed: %s", type(exc).__name__)
                wait = self.poll_seconds
            try:
                async with asyncio.timeout(wait):
                    await self._bell.wait()
            except TimeoutError:
                pass

    async def run_due(self) -> float:
        """Do the work that is due now; the seconds until the next look."""
        for _ in range(_ROUNDS):
            async with self.db.transaction() as conn:
                due = await timers.due_realms(conn, utcnow(), _REALMS_PER_ROUND)
            if not due:
                break
            for realm_id in due:
                await self._run_realm(realm_id)
        async with self.db.transaction() as conn:
            upcoming = await timers.next_due(conn)
        if upcoming is None:
            return self.poll_seconds
        return min(self.poll_seconds, max(0.0, (upcoming - utcnow()).total_seconds()))

    async def _run_realm(self, realm_id: str) -> None:
        async with self.write(realm_id) as conn:
            # The realm lock first, as every write takes it: a heartbeat holding it cannot
            # wait on a timer this transaction holds.
            await realms.lock(conn, realm_id)
            now = utcnow()
            for timer in await timers.take_due(conn, realm_id, now, _TIMERS_PER_REALM):
                later = await self.handlers[timer.kind](conn, realm_id, timer.id, now)
                if later is None:
                    await timers.remove(conn, realm_id, timer.id)
                else:
                    await timers.move(conn, realm_id, timer.id, later)
