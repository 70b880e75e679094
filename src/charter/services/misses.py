"""Cache misses gathered into batches, so a herd of readers costs a few statements.

One change under a realm root wakes every watcher below it, and each misses the cache at the
same moment. Computed one by one, ten thousand misses take ten thousand connections from a
pool of twenty in turn, and those still queued when the pool's wait times out fail. Here a
miss waits one turn of the event loop for the other misses of its realm; they are computed
together (`Prompts.compute_many`: one statement for the compositions, one for their records),
one batch per realm at a time, so a herd queues on a future, where waiting costs nothing.

A miss joins only a batch that has not started: a reader that missed after a change committed
must never be handed a composition read before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from charter.cache.entries import Entry

Compute = Callable[[str, Sequence[str]], Awaitable[dict[str, Entry | Exception]]]

BATCH = 500


class Misses:
    def __init__(self, compute: Compute, batch: int = BATCH) -> None:
        self._compute = compute
        self._batch = batch
        self._waiting: dict[str, dict[str, asyncio.Future[Entry]]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}

    async def compute(self, realm: str, agent: str) -> Entry:
        """The agent's entry, computed in the realm's next batch."""
        waiting = self._waiting.setdefault(realm, {})
        future = waiting.get(agent)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieved)
            waiting[agent] = future
            if realm not in self._running:
                self._running[realm] = asyncio.create_task(self._drain(realm))
        # A reader that leaves (its client went away) leaves the batch running for the others.
        return await asyncio.shield(future)

    async def _drain(self, realm: str) -> None:
        try:
            while True:
                await asyncio.sleep(0)  # the misses of this turn of the loop join the batch
                waiting = self._waiting.pop(realm, None)
                if not waiting:
                    return
                items = list(waiting.items())
                for start in range(0, len(items), self._batch):
                    await self._run(realm, items[start : start + self._batch])
        finally:
            del self._running[realm]
            for future in self._waiting.pop(realm, {}).values():  # only when cancelled
                future.cancel()

    async def _run(self, realm: str, items: list[tuple[str, asyncio.Future[Entry]]]) -> None:
        try:
            results = await self._compute(realm, [agent for agent, _ in items])
        except Exception as exc:
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in items:
                future.cancel()
            raise
        for agent, future in items:
            if future.done():
                continue
            result = results[agent]
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


def _retrieved(future: asyncio.Future[Entry]) -> None:
    """Mark an exception seen: a reader that left would otherwise leave it unretrieved."""
    if not future.cancelled():
        future.exception()
