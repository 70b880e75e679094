"""Per-key token buckets, and the sign-in's failure limit, per process (N processes allow N
times the rate; see docs)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class RateLimiter:
    def __init__(self, per_second: float, burst: float | None = None) -> None:
        self.per_second = per_second
        self.burst = burst if burst is not None else max(1.0, 2 * per_second)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    def take(self, key: str) -> float:
        """Take one token; 0 if granted, else the seconds until one is available."""
        if self.per_second <= 0:  # not `enabled`: this runs on every cached read
            return 0.0
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.per_second)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.per_second
        self._buckets[key] = (tokens - 1, now)
        return 0.0


class FailureLimit:
    """At most `limit` failures per `window` seconds per client, per process: the console's
    sign-in (docs/console.md). Past them, the client is refused, whatever it sends, until
    its oldest failure in the window is `window` seconds old. At most `clients` clients are
    remembered (the one that failed longest ago is forgotten first).
    """

    def __init__(
        self,
        limit: int = 5,
        window: float = 60.0,
        clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clients = clients
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, client: str) -> float:
        """0 if the client may try now, else the seconds until it may."""
        failures = self._failures.get(client)
        if failures is None or len(failures) < self.limit:
            return 0.0
        return max(0.0, failures[0] + self.window - self.clock())

    def failed(self, client: str) -> float:
        """Count a failure now; its time, for `forgive`. A caller counts an attempt as
        failed before it checks it (and forgives it once it turns out not to be a guess), so
        attempts sent all at once are counted before any is checked: past the limit, the
        rest wait."""
        stamp = self.clock()
        failures = self._failures.pop(client, None) or deque(maxlen=self.limit)
        failures.append(stamp)
        self._failures[client] = failures  # the most recent failure last
        while len(self._failures) > self.clients:
            self._failures.popitem(last=False)
        return stamp

    def forgive(self, client: str, stamp: float) -> None:
        """Take back the failure `failed` counted at `stamp` (the attempt was no guess)."""
        failures = self._failures.get(client)
        if failures is not None and stamp in failures:
            failures.remove(stamp)
