"""Per-key token buckets, per process (N processes allow N times the rate; see docs)."""

from __future__ import annotations

import time


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
        if not self.enabled:
            return 0.0
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.per_second)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.per_second
        self._buckets[key] = (tokens - 1, now)
        return 0.0
