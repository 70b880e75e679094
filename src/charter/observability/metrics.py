"""The process's metrics, with prometheus_client, rendered in the Prometheus text format.

One `Metrics` per runtime, on a registry of its own (tests open many apps in one process).
With several workers (`PROMETHEUS_MULTIPROC_DIR` set, as `charter serve --workers N` does),
each worker writes its values to files in that directory and a scrape, whichever worker
answers it, merges them all: counters and histograms add up, gauges of things held open add
up over the live workers, lag gauges take the largest. Callback gauges cannot work across
processes, so every gauge here is kept up to date as things happen (inc/dec), never read at
scrape time.

The hot path (a cached prompt read) pays for pre-bound children only: no label lookup.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

# No `*_created` series: the multiprocess mode has none, so one worker or many serve the same
# families (docs/metrics.md lists them).
disable_created_metrics()  # type: ignore[no-untyped-call]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# The 0.0.4 text format (what generate_latest writes); Litestar adds the charset.
CONTENT_TYPE: Final = "text/plain; version=0.0.4"

# Latency buckets from a cached read (well under a millisecond) to a held long poll (60 s).
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

# The histogram's buckets with +Inf: an observation counts in the first bound it is ≤ to.
_UPPER_BOUNDS: Final = (*LATENCY_BUCKETS, float("inf"))


@dataclass(slots=True)
class _Tally:
    """Requests of one (method, route, status) not yet added to the metrics."""

    count: int = 0
    total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(_UPPER_BOUNDS))


WATCHER_KINDS: Final = ("long_poll", "prompt_stream", "event_stream")
CACHE_TIERS: Final = ("local", "redis")
CACHE_RESULTS: Final = ("hit", "miss", "bypassed")
READ_SOURCES: Final = ("local", "redis", "database")
# Why a request was refused before it ran; other reasons (stream caps) add their own value.
REJECTION_REASONS: Final = ("rate_limit", "stream_cap")
# Where a read of immutable rows offered to a read replica was answered (db/session.py).
REPLICA_OUTCOMES: Final = ("replica", "not_replayed", "unavailable")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """Every metric of one server process; docs/metrics.md is the table of them."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.multiprocess = multiprocess_dir() is not None
        if not self.multiprocess:
            ProcessCollector(registry=registry)
        self.requests = Counter(
            "charter_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "charter_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer (long polls and streams"
            " included), by method, route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cache_lookups = Counter(
            "charter_cache_lookups",
            "Prompt cache lookups by tier (local, redis) and result (hit, miss, bypassed: the"
            " tier was skipped, e.g. Redis down or recovering)",
            ["tier", "result"],
            registry=registry,
        )
        self.prompt_reads = Counter(
            "charter_prompt_reads",
            "Prompt reads by where the answer came from (local, redis, database)",
            ["source"],
            registry=registry,
        )
        self.replica_reads = Counter(
            "charter_replica_reads",
            "Reads of immutable rows offered to a read replica, by outcome (replica: it"
            " answered; not_replayed: it lacked the rows, the primary answered; unavailable: it"
            " failed and rests, the primary answered)",
            ["outcome"],
            registry=registry,
        )
        self.pool_in_use = Gauge(
            "charter_db_pool_in_use",
            "Database connections checked out of the pool",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.pool_waiting = Gauge(
            "charter_db_pool_waiting",
            "Callers waiting for a database connection (the pool is full, or connecting)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.pool_size = Gauge(
            "charter_db_pool_size",
            "Database connections the pool may hold",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.relay_lag_events = Gauge(
            "charter_relay_lag_events",
            "Events past the relay cursors when the last relay pass began (0 without Redis)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.relay_lag_seconds = Gauge(
            "charter_relay_lag_seconds",
            "Age of the oldest undelivered event when the last relay pass began",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.watchers = Gauge(
            "charter_watchers",
            "Open watchers by kind (long_poll, prompt_stream, event_stream)",
            ["kind"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.rejections = Counter(
            "charter_rejections",
            "Requests refused before they ran, by reason (rate_limit, ...)",
            ["reason"],
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "charter_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered: a 2xx; failed: anything else)",
            ["outcome"],
            registry=registry,
        )
        self.local_entries = Gauge(
            "charter_local_cache_entries",
            "Entries in the process-local prompt cache",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.local_enabled = Gauge(
            "charter_local_cache_enabled",
            "1 while the process-local cache serves (it hears every change), else 0",
            registry=registry,
            multiprocess_mode="livemin",
        )
        # Pre-bound children: label lookups cost more than the increments.
        self._lookups = {
            (tier, result): self.cache_lookups.labels(tier, result)
            for tier in CACHE_TIERS
            for result in CACHE_RESULTS
        }
        self._reads = {source: self.prompt_reads.labels(source) for source in READ_SOURCES}
        self._watchers = {kind: self.watchers.labels(kind) for kind in WATCHER_KINDS}
        for reason in REJECTION_REASONS:
            self.rejections.labels(reason)
        for outcome in ("delivered", "failed"):
            self.webhook_deliveries.labels(outcome)
        for outcome in REPLICA_OUTCOMES:
            self.replica_reads.labels(outcome)
        self._observers: dict[tuple[str, str, int], tuple[Callable[[float], None], Any]] = {}
        # One process's own scrape is its only reader: the hottest figures (every request's
        # count and latency, every cached read's lookup) are tallied in plain numbers and
        # added to the metrics when it renders (`flush`), a dictionary update where each
        # increment took a lock. Several workers read each other's files at any time, so
        # they write through.
        self._tally: dict[tuple[str, str, int], _Tally] | None = None if self.multiprocess else {}
        self._counts: dict[tuple[str, str, str], int] | None = None if self.multiprocess else {}
        self._local_hits = 0  # `local_hit`s not yet flushed (one process only)
        self.local_enabled.set(1)
        # Gauges of this process's state, set from it before a scrape and on every relay pass
        # (so another worker's scrape sees them at most a pass old).
        self.refreshers: list[Callable[[], None]] = []

    # --- recording --------------------------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        if self._tally is not None:
            tally = self._tally.get(key)
            if tally is None and len(self._tally) < 10_000:
                tally = self._tally[key] = _Tally()
            if tally is not None:
                tally.count += 1
                tally.total += seconds
                tally.buckets[bisect_left(_UPPER_BOUNDS, seconds)] += 1
                return
        self._record(key, 1, seconds, None)

    def _record(
        self, key: tuple[str, str, int], count: int, total: float, buckets: list[int] | None
    ) -> None:
        pair = self._observers.get(key)
        if pair is None:
            method, route, status = key
            code = str(status)
            pair = (
                self.requests.labels(method, route, code).inc,
                self.latency.labels(method, route, code),
            )
            if len(self._observers) < 10_000:  # bounded: methods and statuses are few anyway
                self._observers[key] = pair
        inc, histogram = pair
        if buckets is None:
            inc(count)
            histogram.observe(total)
            return
        # A tally: the histogram's own values, added to as `observe` would have, once each.
        inc(count)
        histogram._sum.inc(total)
        for i, n in enumerate(buckets):
            if n:
                histogram._buckets[i].inc(n)

    def lookup(self, tier: str, result: str, n: int = 1) -> None:
        if n:
            if self._counts is not None:
                key = ("lookup", tier, result)
                self._counts[key] = self._counts.get(key, 0) + n
            else:
                self._lookups[(tier, result)].inc(n)

    def read(self, source: str, n: int = 1) -> None:
        if n:
            if self._counts is not None:
                key = ("read", source, "")
                self._counts[key] = self._counts.get(key, 0) + n
            else:
                self._reads[source].inc(n)

    def local_hit(self) -> None:
        """A prompt answered from the local tier: a lookup hit there and a read from there
        (`lookup` and `read` in one step, on the hottest path)."""
        if self._counts is not None:
            self._local_hits += 1
        else:
            self._lookups[("local", "hit")].inc()
            self._reads["local"].inc()

    def flush(self) -> None:
        """Add what was tallied since the last flush to the metrics themselves."""
        if self._local_hits:
            hits, self._local_hits = self._local_hits, 0
            self._lookups[("local", "hit")].inc(hits)
            self._reads["local"].inc(hits)
        if self._tally:
            tally, self._tally = self._tally, {}
            for key, t in tally.items():
                self._record(key, t.count, t.total, t.buckets)
        if self._counts:
            counts, self._counts = self._counts, {}
            for (kind, a, b), n in counts.items():
                (self._lookups[(a, b)] if kind == "lookup" else self._reads[a]).inc(n)

    def rejected(self, reason: str) -> None:
        self.rejections.labels(reason).inc()

    @contextmanager
    def watching(self, kind: str) -> Iterator[None]:
        gauge = self._watchers[kind]
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    # --- rendering --------------------------------------------------------------------------

    def refresh(self) -> None:
        self.flush()
        for refresh in self.refreshers:
            refresh()

    def render(self) -> bytes:
        """The text exposition: this process's, or every worker's merged."""
        self.refresh()
        if not self.multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        ProcessCollector(registry=merged)  # the worker that answers this scrape
        return generate_latest(merged)


def worker_exited(pid: int) -> None:
    """Forget a dead worker's live gauges (multiprocess mode)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
