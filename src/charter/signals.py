"""SIGTERM and SIGINT reach the app too, so that a stopping server ends its streams.

On either signal granian stops accepting connections and then waits for every open request
to finish before it runs the app's lifespan shutdown. A stream or long poll does not finish
on its own, so without a word to the app a server holding one never stopped (issue 11). The
ASGI interface carries no such word, so the app listens for the signals itself.

The handler is installed beside the server's own: Python calls ours, and ours calls the one
that was there (granian's event loop handler, uvicorn's, ...). Only a signal that already has
a Python handler is taken over; one left to the default action keeps it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` on the running loop when a stop signal arrives; returns the undo."""
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        # Runs between two bytecodes of whatever the main thread was doing: only hand over.
        loop.call_soon_threadsafe(callback)
        chained = previous.get(signal.Signals(signum))
        if callable(chained):
            chained(signum, frame)

    for sig in STOP_SIGNALS:
        try:
            current = signal.getsignal(sig)
            if callable(current):
                previous[sig] = current
                signal.signal(sig, handler)
        except ValueError:  # not the main thread: signals are not ours to take
            break

    def undo() -> None:
        for sig, chained in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, chained)

    return undo
