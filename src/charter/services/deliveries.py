"""Webhook delivery: from the outbox, at least once, in feed order per webhook.

Every server process runs one `Deliverer`. A pass finds the webhooks, in every realm, that
have events past their cursor and are due (one query over the cursors, which hold no secret),
and starts one task per webhook. A task first takes the webhook's lease (one conditional
UPDATE: of processes racing for it, one wins), then reads the realm's events past the cursor
through the feed's own read (`store.events.feed`), and sends those the webhook wants, one at a
time, in seq order. Each success records the attempt and moves the cursor in one transaction;
the first failure records it, backs off, and lets the lease go. So a slow or dead receiver
holds up only its own webhook, and a crash between a send and its record only repeats that
send, with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.cache.watch import Watch
from charter.clock import utcnow
from charter.db.session import Database
from charter.domain import webhooks as rules
from charter.domain.events import EventType
from charter.errors import NotFound
from charter.ids import new_id
from charter.metrics import Metrics
from charter.services.sender import Outcome, Sender
from charter.store import events, realms
from charter.store import webhooks as store
from charter.store.events import Event, NewEvent
from charter.store.webhooks import Claim, Delivery, Webhook

log = logging.getLogger("charter.webhooks")

Encode = Callable[[Event], bytes]
Write = Callable[[str], AbstractAsyncContextManager[AsyncConnection]]

PAGE = 200  # events per feed read
CONCURRENCY = 64  # webhooks delivered at once by one process
POLL_SECONDS = 1.0  # a pass at least this often: retries come due, other processes write
COALESCE_SECONDS = 0.002  # after a ring, for the commits right behind it
ACTOR = "charter:webhooks"  # the actor of the events the deliverer writes


class Deliverer:
    def __init__(
        self,
        db: Database,
        write: Write,
        sender: Sender,
        encode: Encode,
        retry_seconds: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.write = write
        self.sender = sender
        self.encode = encode
        self.retry_seconds = retry_seconds
        # A lease outlives the longest send (bounded by the sender's timeout) with room for
        # the record that follows it; it is renewed after every delivered event.
        self.lease = timedelta(seconds=2 * sender.timeout + 2)
        self.owner = new_id("dlw")
        self.bell = Watch()  # rung by the hub on every change, and when a task ends
        self._running: dict[tuple[str, str], asyncio.Task[bool]] = {}
        # Whether the last pass saw any active webhook, in any realm: without one, a commit
        # sets off no pass (the poll still runs every second, and finds new ones).
        self._active = True

    async def run(self) -> None:
        last = 0.0
        try:
            while True:
                rang = await self.bell.wait(POLL_SECONDS)
                due = time.monotonic() - last >= POLL_SECONDS
                if rang and not due:
                    if not self._active:
                        continue  # no active webhook anywhere: commits need no pass
                    # A burst of commits makes one pass, not one each.
                    await asyncio.sleep(COALESCE_SECONDS)
                last = time.monotonic()
                try:
                    await self.sweep()
                except Exception as exc:
                    log.warning("webhook pass failed (%s); retrying", type(exc).__name__)
        finally:
            tasks = list(self._running.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.sender.close()

    def wake(self) -> None:
        """A webhook was made or enabled here: look at once."""
        self._active = True
        self.bell.ring()

    async def idle(self) -> None:
        """Deliver nothing in the background; close the sender when cancelled."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.sender.close()

    async def sweep(self) -> list[asyncio.Task[bool]]:
        """Start a task for each due webhook not already being delivered here; the tasks."""
        room = CONCURRENCY - len(self._running)
        if room <= 0:
            return []
        async with self.db.transaction() as conn:
            due = await store.due(conn, utcnow(), room + len(self._running))
            self._active = bool(due) or bool(self._running) or await store.any_active(conn)
        started: list[asyncio.Task[bool]] = []
        for key in due:
            if key in self._running or len(self._running) >= CONCURRENCY:
                continue
            task = asyncio.create_task(self._deliver(*key), name="charter-webhook")
            self._running[key] = task
            task.add_done_callback(lambda done, key=key: self._done(key, done))  # type: ignore[misc]
            started.append(task)
        return started

    def _done(self, key: tuple[str, str], task: asyncio.Task[bool]) -> None:
        self._running.pop(key, None)
        # Events may have come in meanwhile: look again at once, unless the task broke (the
        # database went away, say), when looking at once would only break it again.
        if not task.cancelled() and task.result():
            self.bell.ring()

    async def _deliver(self, realm: str, webhook_id: str) -> bool:
        """Deliver what the webhook has pending, if its lease is free; False if it broke."""
        now, owner = utcnow(), self.owner
        try:
            async with self.db.transaction(realm) as conn:
                claim = await store.claim(conn, realm, webhook_id, owner, now, now + self.lease)
                if claim is None:
                    return True  # another process holds it
                hook = await store.get(conn, realm, webhook_id)
                # The first page in the same transaction: one round of BEGIN and COMMIT less
                # between a commit and its delivery.
                page = await events.feed(conn, realm, claim.delivered_seq, PAGE)
            try:
                await self._drain(hook, claim, page)
            finally:
                with contextlib.suppress(Exception):
                    async with self.db.transaction(realm) as conn:
                        await store.release(conn, claim, self.owner)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("webhook delivery failed (%s)", type(exc).__name__)
            return False
        return True

    async def _drain(self, hook: Webhook, claim: Claim, page: list[Event]) -> None:
        cursor, failures, since = claim.delivered_seq, claim.failures, claim.failing_since
        moved = cursor  # how far the stored cursor stands
        while True:
            if not page:
                return
            for event in page:
                about = rules.concerned(event.type, event.affected_agents, event.payload)
                if not rules.wants(hook.events, hook.agents, event.type, about):
                    continue
                outcome = await self.sender.send(
                    hook.url, hook.secret, rules.message_id(hook.id, event.seq), self.encode(event)
                )
                attempt = self._attempt(hook, event, failures + 1, outcome, manual=False)
                if not outcome.ok:
                    await self._failed(hook, claim, attempt, since)
                    return
                if not await self._advance(hook, claim, event.seq, attempt):
                    return  # the lease went to another process
                moved, failures, since = event.seq, 0, None
            cursor = page[-1].seq
            if cursor > moved:
                # Events this webhook does not want: the cursor passes them.
                if not await self._advance(hook, claim, cursor, None):
                    return
                moved = cursor
            async with self.db.transaction(hook.realm_id) as conn:
                page = await events.feed(conn, hook.realm_id, cursor, PAGE)

    async def _advance(
        self, hook: Webhook, claim: Claim, seq: int, attempt: Delivery | None
    ) -> bool:
        now = utcnow()
        async with self.db.transaction(hook.realm_id) as conn:
            if attempt is not None:
                await store.record(conn, hook.realm_id, attempt)
            return await store.advance(conn, claim, self.owner, seq, now + self.lease)

    async def _failed(
        self, hook: Webhook, claim: Claim, attempt: Delivery, since: datetime | None
    ) -> None:
        now = attempt.attempted_at
        since = since or now
        if (now - since).total_seconds() < self.retry_seconds:
            wait = rules.backoff(attempt.attempt, self.retry_seconds, random.random())
            async with self.db.transaction(hook.realm_id) as conn:
                await store.record(conn, hook.realm_id, attempt)
                await store.failed(conn, claim, self.owner, since, now + timedelta(seconds=wait))
            return
        async with self.write(hook.realm_id) as conn:
            await store.record(conn, hook.realm_id, attempt)
            if not await store.disable(conn, claim, self.owner, now):
                return
            at = await realms.lock(conn, hook.realm_id)
            payload = {
                "webhook_id": hook.id,
                "failures": attempt.attempt,
                "failing_since": since.isoformat(),
                "last_seq": attempt.seq,
            }
            disabled = NewEvent(
                EventType.WEBHOOK_DISABLED, hook.id, 0, None, ACTOR, at, payload=payload
            )
            await events.append(conn, hook.realm_id, [disabled])
        log.warning("webhook disabled after %d failed attempts", attempt.attempt)

    def _attempt(
        self, hook: Webhook, event: Event, attempt: int, outcome: Outcome, manual: bool
    ) -> Delivery:
        if self.metrics is not None:
            self.metrics.webhook_deliveries.labels("delivered" if outcome.ok else "failed").inc()
        return Delivery(
            id=new_id("dlv"),
            webhook_id=hook.id,
            seq=event.seq,
            message_id=rules.message_id(hook.id, event.seq),
            event_type=event.type,
            attempt=attempt,
            manual=manual,
            status_code=outcome.status_code,
            error=outcome.error,
            latency_ms=outcome.latency_ms,
            attempted_at=utcnow(),
        )

    async def retry(
        self, conn: AsyncConnection, realm: str, webhook_id: str, delivery_id: str
    ) -> Delivery:
        """Send a logged delivery's event again, now, with the same `webhook-id`, and log the
        attempt in `conn`'s transaction. It moves no cursor: the webhook's order is its own."""
        hook = await store.get(conn, realm, webhook_id)
        earlier = await store.delivery(conn, realm, webhook_id, delivery_id)
        page = await events.feed(conn, realm, earlier.seq - 1, 1, until=earlier.seq)
        if not page:
            raise NotFound(f"event {earlier.seq} not found")
        tried = await store.attempts(conn, realm, webhook_id, earlier.seq)
        event = page[0]
        outcome = await self.sender.send(
            hook.url, hook.secret, earlier.message_id, self.encode(event)
        )
        attempt = self._attempt(hook, event, tried + 1, outcome, manual=True)
        await store.record(conn, realm, attempt)
        return attempt
