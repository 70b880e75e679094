"""Settings, read once from the environment and passed explicitly."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from charter.domain.tree import DEFAULT_MAX_DEPTH
from charter.observability.logs import FORMATS as LOG_FORMATS
from charter.observability.tracing import wanted as traces_wanted

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./charter.db"
DEFAULT_REDIS_PREFIX = "charter"
# No braces (they would move the Redis Cluster hash tag) and no glob characters (the prefix
# goes into SCAN and PSUBSCRIBE patterns, where they would match other deployments' names).
_REDIS_PREFIX = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_ORIGIN = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")
REDIS_CLUSTER_SCHEME = "redis+cluster://"
_CLUSTER_SEED = re.compile(r"[A-Za-z0-9.-]+:[0-9]{1,5}")


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    admin_database_url: str | None = None
    redis_url: str | None = None
    # Starts every Redis key and channel: deployments sharing one Redis keep out of each other.
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    bootstrap_key: str | None = None
    max_depth: int = DEFAULT_MAX_DEPTH
    max_request_bytes: int = 256 * 1024
    # POST …/inject only: a long chat history with an image or two (api/inject.py).
    max_inject_bytes: int = 4 * 1024 * 1024
    allow_rls_bypass: bool = False
    database_pool_size: int = 20
    # PostgreSQL streaming replicas for reads of immutable rows (ADR 0013); empty: none.
    read_replica_urls: tuple[str, ...] = ()
    heartbeat_seconds: float = 15.0
    # Per key and process; None: off in the embedded (SQLite) mode, 200/s otherwise.
    rate_limit_per_second: float | None = None
    idempotency_hours: float = 24.0
    # The HTTP edge (api/edges.py): a request body must arrive within this time, else 408.
    body_timeout_seconds: float = 30.0
    # Streams and long polls: open at once per key and process (0: no cap; beyond it 429),
    # and the seconds `charter serve` gives its workers to stop before it kills them.
    max_streams_per_key: int = 100
    shutdown_timeout_seconds: int = 4
    # Observability (docs/observability.md).
    metrics_public: bool = False  # False: /metrics needs a key (any role)
    log_format: str = "text"  # or "json": one JSON object per line
    tracing: bool = False  # OpenTelemetry, as the OTEL_* variables ask (the `otel` extra)
    # Origins (scheme://host[:port]) whose pages may call the API and its streams (CORS,
    # credentials included); empty: none, the default.
    cors_origins: tuple[str, ...] = ()
    # Webhooks (docs/webhooks.md): private and loopback targets allowed; how long failures are
    # retried before the webhook is disabled; how long one delivery may take.
    webhook_allow_private: bool = False
    webhook_retry_hours: float = 24.0
    webhook_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        for origin in self.cors_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"CHARTER_CORS_ORIGINS {origin!r}: name origins as scheme://host[:port], "
                    "comma-separated (no path, no *)"
                )
        if not _REDIS_PREFIX.fullmatch(self.redis_prefix):
            raise ValueError(
                f"CHARTER_REDIS_PREFIX {self.redis_prefix!r}: use 1-64 of A-Z a-z 0-9 . _ : -"
            )
        # (Beside an embedded SQLite database there is nothing to replicate: they are unused.)
        if not all(u.startswith("postgresql") for u in self.read_replica_urls):
            raise ValueError(
                "CHARTER_READ_REPLICA_URLS: comma-separated PostgreSQL URLs"
                " (postgresql+asyncpg://…)"
            )

        if self.redis_cluster:
            assert self.redis_url is not None
            listed = self.redis_url[len(REDIS_CLUSTER_SCHEME) :].rstrip("/").split(",")
            if not all(_CLUSTER_SEED.fullmatch(seed.strip()) for seed in listed):
                raise ValueError(
                    "CHARTER_REDIS_URL: a Redis Cluster is named as "
                    "redis+cluster://host:port,host:port,… (any of its nodes, as seeds)"
                )

    @property
    def redis_cluster(self) -> bool:
        """CHARTER_REDIS_URL names a Redis Cluster (`redis+cluster://host:port,…`)."""
        return self.redis_url is not None and self.redis_url.startswith(REDIS_CLUSTER_SCHEME)

    @property
    def rate_limit(self) -> float:
        if self.rate_limit_per_second is not None:
            return self.rate_limit_per_second
        return 0.0 if self.is_sqlite else 200.0

    @property
    def migration_url(self) -> str:
        return self.admin_database_url or self.database_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("CHARTER_DATABASE_URL", DEFAULT_DATABASE_URL),
            admin_database_url=env.get("CHARTER_ADMIN_DATABASE_URL") or None,
            redis_url=env.get("CHARTER_REDIS_URL") or None,
            redis_prefix=env.get("CHARTER_REDIS_PREFIX") or DEFAULT_REDIS_PREFIX,
            bootstrap_key=env.get("CHARTER_BOOTSTRAP_KEY") or None,
            max_depth=int(env.get("CHARTER_MAX_DEPTH", DEFAULT_MAX_DEPTH)),
            max_request_bytes=int(env.get("CHARTER_MAX_REQUEST_BYTES", 256 * 1024)),
            max_inject_bytes=int(env.get("CHARTER_MAX_INJECT_BYTES", 4 * 1024 * 1024)),
            allow_rls_bypass=env.get("CHARTER_ALLOW_RLS_BYPASS") == "1",
            database_pool_size=int(env.get("CHARTER_DATABASE_POOL_SIZE", 20)),
            read_replica_urls=tuple(
                u.strip() for u in env.get("CHARTER_READ_REPLICA_URLS", "").split(",") if u.strip()
            ),
            rate_limit_per_second=(
                float(env["CHARTER_RATE_LIMIT"]) if env.get("CHARTER_RATE_LIMIT") else None
            ),
            idempotency_hours=float(env.get("CHARTER_IDEMPOTENCY_HOURS", 24)),
            heartbeat_seconds=_positive(env, "CHARTER_HEARTBEAT_SECONDS", 15.0),
            body_timeout_seconds=_positive(env, "CHARTER_BODY_TIMEOUT_SECONDS", 30.0),
            max_streams_per_key=int(env.get("CHARTER_MAX_STREAMS_PER_KEY", 100)),
            shutdown_timeout_seconds=int(env.get("CHARTER_SHUTDOWN_TIMEOUT", 4)),
            metrics_public=env.get("CHARTER_METRICS_PUBLIC") == "1",
            log_format=_one_of(env, "CHARTER_LOG_FORMAT", LOG_FORMATS),
            tracing=traces_wanted(env),
            cors_origins=tuple(
                o.strip() for o in env.get("CHARTER_CORS_ORIGINS", "").split(",") if o.strip()
            ),
            webhook_allow_private=env.get("CHARTER_WEBHOOK_ALLOW_PRIVATE") == "1",
            webhook_retry_hours=_positive(env, "CHARTER_WEBHOOK_RETRY_HOURS", 24.0, "hours"),
            webhook_timeout_seconds=_positive(env, "CHARTER_WEBHOOK_TIMEOUT_SECONDS", 10.0),
        )


def _one_of(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or allowed[0]).strip().lower()
    if value not in allowed:
        raise ValueError(f"{name} must be one of: {', '.join(allowed)}")
    return value


def _positive(env: Mapping[str, str], name: str, default: float, unit: str = "seconds") -> float:
    try:
        value = float(env.get(name) or default)
    except ValueError:
        value = 0.0
    if not value > 0:  # nan too
        raise ValueError(f"{name} must be a number of {unit} above 0")
    return value
