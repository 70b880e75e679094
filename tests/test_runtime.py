"""The runtime's shutdown: every background task ends, even one that swallowed a cancellation."""

from __future__ import annotations

import asyncio

from charter.runtime import open_runtime
from charter.settings import Settings

SHUTDOWN_SECONDS = 10.0


async def test_shutdown_ends_a_loop_whose_cancellation_was_swallowed(sqlite_url: str) -> None:
    """redis-py's publish can return normally when cancelled; the relay loop then carries on."""
    swallowed = asyncio.Event()

    async def retrying_loop() -> None:
        try:
            await asyncio.sleep(3600)  # stands for a client call that eats the cancellation
        except asyncio.CancelledError:
            swallowed.set()
        passes = 0
        while passes >= 0:
            passes += 1  # a pass of work, then the loop's own pause
            await asyncio.sleep(0.05)

    tasks: list[asyncio.Task[None]] = []

    async def serve_then_shut_down() -> None:
        async with open_runtime(Settings(database_url=sqlite_url)) as runtime:
            runtime.tasks.append(asyncio.create_task(retrying_loop()))
            tasks.extend(runtime.tasks)
            await asyncio.sleep(0)  # let the loop reach its first await

    lifetime = asyncio.create_task(serve_then_shut_down())
    done, _ = await asyncio.wait([lifetime], timeout=SHUTDOWN_SECONDS)
    if not done:
        lifetime.cancel()  # a second cancellation, passed on to the task it awaits
        await asyncio.wait([lifetime], timeout=SHUTDOWN_SECONDS)
    assert done, "the runtime did not shut down: a background task outlived it"
    lifetime.result()
    assert swallowed.is_set()
    assert all(task.done() for task in tasks)
