"""The rollout guard: aborts a rollout whose candidate has proved worse (DESIGN §8).

Every server process runs one. An outcome posted to a process pokes its guard with the
rollouts it counted towards; a sweep of every realm's guarded rollouts, at start and then now
and then, catches outcomes whose process went away before it looked. The abort is an
ordinary CAS write by `charter:guard`, so of several processes deciding at once one wins and
the others find the rollout gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.db.session import Database
from charter.domain.experiments import guard_aborts
from charter.domain.rollouts import GUARD_ACTOR, Arm
from charter.errors import NotFound, StaleRevision
from charter.services import rollouts as rollout_writes
from charter.services.writes import Actor, Expected
from charter.store import realms, rollouts

log = logging.getLogger("charter.guard")

Writer = Callable[[str], AbstractAsyncContextManager[AsyncConnection]]
GUARD = Actor(key_id=GUARD_ACTOR, name="rollout guard")


class RolloutGuard:
    """Looks at poked (realm, directive) pairs within `delay`, and at everything each
    `sweep_every` seconds."""

    def __init__(
        self, db: Database, write: Writer, delay: float = 0.2, sweep_every: float = 60.0
    ) -> None:
        self.db = db
        self.write = write
        self.delay = delay
        self.sweep_every = sweep_every
        self._poked: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self.decided = 0  # rollouts judged with enough samples (aborted or kept)
        self.aborted = 0

    def poke(self, realm_id: str, directive_ids: list[str]) -> None:
        self._poked.update((realm_id, d) for d in directive_ids)
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # The first sweep waits its turn: a process that starts has no outcome of its own to
        # look at, and many processes starting at once should not all walk every realm.
        next_sweep = loop.time() + self.sweep_every
        while True:
            if loop.time() >= next_sweep:
                await self._guarded(self.sweep)
                next_sweep = loop.time() + self.sweep_every
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_sweep - loop.time()))
            if self._wake.is_set():
                await asyncio.sleep(self.delay)  # let a burst of outcomes arrive together
                self._wake.clear()
                poked, self._poked = self._poked, set()
                for realm_id, directive_id in sorted(poked):
                    await self._guarded(functools.partial(self.check, realm_id, directive_id))

    async def _guarded(self, step: Callable[[], Awaitable[object]]) -> None:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:  # the database may be away: the next poke or sweep tries again
            log.warning("rollout guard check failed", exc_info=True)

    async def sweep(self) -> None:
        """Check every guarded rollout of every realm."""
        async with self.db.transaction() as conn:
            realm_ids = [realm.id for realm in await realms.page(conn, 10_000, None)]
        for realm_id in realm_ids:
            async with self.db.transaction(realm_id) as conn:
                running = await rollouts.running(conn, realm_id)
            for run in running:
                if run.rollout.guard is not None:
                    await self.check(realm_id, run.directive_id)

    async def check(self, realm_id: str, directive_id: str) -> bool:
        """Abort the directive's rollout if its guard says so; whether this call did."""
        for _ in range(3):  # a revision that moved under the decision: decide again
            try:
                return await self._check(realm_id, directive_id)
            except StaleRevision:
                continue
        return False

    async def _check(self, realm_id: str, directive_id: str) -> bool:
        async with self.db.transaction(realm_id) as conn:
            found = await rollouts.running(conn, realm_id, [directive_id])
            if not found or found[0].rollout.guard is None:
                return False
            run = found[0]
            guard = run.rollout.guard
            assert guard is not None
            arms = (await rollouts.values(conn, realm_id, run.rollout.id, guard.metric)).get(
                guard.metric, {}
            )
        candidate = arms.get(Arm.CANDIDATE.value, [])
        control = arms.get(Arm.CONTROL.value, [])
        if min(len(candidate), len(control)) < guard.min_samples:
            return False
        self.decided += 1
        if not guard_aborts(
            candidate,
            control,
            min_samples=guard.min_samples,
            higher_is_better=guard.higher_is_better,
            max_regression=guard.max_regression,
        ):
            return False
        try:
            async with self.write(realm_id) as conn:
                await rollout_writes.abort(
                    conn,
                    realm_id,
                    GUARD,
                    directive_id,
                    Expected(run.revision, via_header=False),
                    reason="guard",
                )
        except NotFound:
            return False  # another process aborted it first
        self.aborted += 1
        log.info("rollout guard aborted rollout %s of %s", run.rollout.id, directive_id)
        return True
