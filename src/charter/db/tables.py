"""The schema as SQLAlchemy Core tables. Every table and index leads with `realm_id`.

The Alembic history in the package (`charter/migrations/`) creates these;
`tests/db/test_schema.py` checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

Json = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)

realms = Table(
    "realms",
    metadata,
    Column("id", String(63), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("revision", BigInteger, nullable=False, server_default="0"),
    Column("created_at", Timestamp, nullable=False),
    # The time of the realm's latest event: no later event may take an earlier one (0007).
    Column("clock", Timestamp, nullable=True),
)

directives = Table(
    "directives",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("id", String(40), nullable=False),
    Column("key", String(128)),
    Column("level", String(16), nullable=False),
    Column("parent_id", String(40)),
    Column("status", String(16), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("owner_agent_id", String(128)),
    Column("injection_mode", String(16), nullable=False),
    Column("metadata", Json, nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("active_version", Integer),
    Column("latest_version", Integer, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    # The running rollout, or null (migration 0011): see store/rollouts.py for its shape.
    Column("rollout", Json, nullable=True),
    # When work on it may be claimed, and the last failed claim's {code, at} (0012, §10).
    Column("not_before", Timestamp),
    Column("last_failure", Json),
    PrimaryKeyConstraint("realm_id", "id"),
    ForeignKeyConstraint(["realm_id"], ["realms.id"]),
    # Composite: a parent is always in the same realm.
    ForeignKeyConstraint(["realm_id", "parent_id"], ["directives.realm_id", "directives.id"]),
    UniqueConstraint("realm_id", "key"),
    Index("ix_directives_realm_id_parent_id", "realm_id", "parent_id"),
    Index("ix_directives_realm_id_owner_agent_id", "realm_id", "owner_agent_id"),
)

directive_versions = Table(
    "directive_versions",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("directive_id", String(40), nullable=False),
    Column("version", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("content_hash", String(71), nullable=False),
    Column("author", String(128), nullable=False),
    Column("message", Text),
    Column("based_on", Integer),
    Column("created_at", Timestamp, nullable=False),
    # The backstop for concurrent version creation, recognised by its conventional name.
    PrimaryKeyConstraint("realm_id", "directive_id", "version"),
    ForeignKeyConstraint(["realm_id", "directive_id"], ["directives.realm_id", "directives.id"]),
)

events = Table(
    "events",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(40), nullable=False),
    Column("directive_id", String(40), nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("version", Integer),
    Column("actor", String(128), nullable=False),
    Column("message", Text),
    Column("occurred_at", Timestamp, nullable=False),
    Column("affected_agents", Json, nullable=False),
    Column("payload", Json, nullable=False),
    PrimaryKeyConstraint("realm_id", "seq"),
    ForeignKeyConstraint(["realm_id"], ["realms.id"]),
    Index("ix_events_realm_id_directive_id_seq", "realm_id", "directive_id", "seq"),
)


compositions = Table(
    "compositions",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("id", String(68), nullable=False),
    Column("agent_id", String(128), nullable=False),
    Column("renderer_version", Integer, nullable=False),
    Column("injection_mode", String(16), nullable=False),
    Column("layers", Json, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    # The values a template's placeholders took (migration 0015); null: no template.
    Column("variables", Json),
    PrimaryKeyConstraint("realm_id", "id"),
    ForeignKeyConstraint(["realm_id"], ["realms.id"]),
)

# Every agent whose prompt a composition is or was: agents with identical layers share an id,
# and each may resolve it (migration 0009).
composition_agents = Table(
    "composition_agents",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("composition_id", String(68), nullable=False),
    Column("agent_id", String(128), nullable=False),
    PrimaryKeyConstraint("realm_id", "composition_id", "agent_id"),
    ForeignKeyConstraint(
        ["realm_id", "composition_id"], ["compositions.realm_id", "compositions.id"]
    ),
)

# Each outcome attributed to an arm of a running rollout (migration 0011).
rollout_outcomes = Table(
    "rollout_outcomes",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("rollout_id", String(40), nullable=False),
    Column("id", String(40), nullable=False),
    Column("directive_id", String(40), nullable=False),
    Column("arm", String(16), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("value", Float, nullable=False),
    Column("agent_id", String(128), nullable=False),
    Column("composition_id", String(68), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("realm_id", "rollout_id", "id"),
    ForeignKeyConstraint(["realm_id", "directive_id"], ["directives.realm_id", "directives.id"]),
)

relay_cursors = Table(
    "relay_cursors",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("delivered_seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("realm_id"),
    ForeignKeyConstraint(["realm_id"], ["realms.id"]),
)


# Webhooks (migration 0013): the target and its secret, realm-isolated.
webhooks = Table(
    "webhooks",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("id", String(40), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("secret", String(64), nullable=False),
    Column("event_types", Json, nullable=False),
    Column("agents", Json, nullable=True),
    Column("created_by", String(40), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("realm_id", "id"),
    ForeignKeyConstraint(["realm_id"], ["realms.id"]),
)

# Each webhook's delivery state. No secret, no target: readable across realms, so one query
# finds every webhook that is due; written only for the realm a transaction names.
webhook_cursors = Table(
    "webhook_cursors",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("webhook_id", String(40), nullable=False),
    Column("state", String(16), nullable=False),
    Column("delivered_seq", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),  # consecutive failed attempts
    Column("failing_since", Timestamp, nullable=True),
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("lease_owner", String(40), nullable=True),
    Column("lease_until", Timestamp, nullable=True),
    Column("disabled_at", Timestamp, nullable=True),
    PrimaryKeyConstraint("realm_id", "webhook_id"),
    ForeignKeyConstraint(["realm_id", "webhook_id"], ["webhooks.realm_id", "webhooks.id"]),
)

# One row per delivery attempt: what was sent (by seq and message id) and how it went.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("id", String(40), nullable=False),
    Column("webhook_id", String(40), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("message_id", String(80), nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("manual", Boolean, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", String(64), nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("attempted_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("realm_id", "id"),
    ForeignKeyConstraint(["realm_id", "webhook_id"], ["webhooks.realm_id", "webhooks.id"]),
    Index("ix_webhook_deliveries_realm_id_webhook_id_id", "realm_id", "webhook_id", "id"),
)


api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("realms", Json, nullable=False),
    Column("agent_id", String(128)),
    Column("name", String(256)),
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("secret_hash"),
)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("caller", String(40), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(512), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("headers", Json, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("realm_id", "caller", "method", "path", "key"),
    Index("ix_idempotency_records_realm_id_created_at", "realm_id", "created_at"),
)

# Console sign-ins (docs/console.md, ADR 0011). Like `api_keys`, not realm-scoped: a session
# stands for a key, which may span realms. Only hashes of the cookie and of the key are kept.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(40), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("ended_at", Timestamp),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("secret_hash"),
    Index("ix_console_sessions_expires_at", "expires_at"),
)

# Claims with leases (0012, §10). One live claim per directive: the partial unique index is
# the rule, whatever the writers do.
claims = Table(
    "claims",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("id", String(40), nullable=False),
    Column("directive_id", String(40), nullable=False),
    Column("agent_id", String(128), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("lease_seconds", Integer, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp),
    Column("error_code", String(128)),
    Column("result", Json),
    PrimaryKeyConstraint("realm_id", "id"),
    ForeignKeyConstraint(["realm_id", "directive_id"], ["directives.realm_id", "directives.id"]),
    Index(
        "uq_claims_live",
        "realm_id",
        "directive_id",
        unique=True,
        postgresql_where=text("state = 'live'"),
        sqlite_where=text("state = 'live'"),
    ),
    Index("ix_claims_realm_id_directive_id", "realm_id", "directive_id"),
    Index("ix_claims_realm_id_agent_id", "realm_id", "agent_id"),
)

# Timed CAS writes on a directive (0012, §8).
schedules = Table(
    "schedules",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("id", String(40), nullable=False),
    Column("directive_id", String(40), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("action", Json, nullable=False),
    Column("expected_revision", BigInteger),
    Column("state", String(16), nullable=False),
    Column("creator", String(40), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("ran_at", Timestamp),
    Column("reason", String(64)),
    PrimaryKeyConstraint("realm_id", "id"),
    ForeignKeyConstraint(["realm_id", "directive_id"], ["directives.realm_id", "directives.id"]),
    Index("ix_schedules_realm_id_directive_id", "realm_id", "directive_id"),
)

# The due work of claims and schedules: one row per live lease or pending schedule, read
# across realms by every process, deleted in the transaction that does the work (ADR 0008).
timers = Table(
    "timers",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("id", String(40), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("due_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("realm_id", "id"),
    ForeignKeyConstraint(["realm_id"], ["realms.id"]),
    Index("ix_timers_realm_id_due_at", "realm_id", "due_at"),
)

# Template variables (DESIGN §9, migration 0015): an agent's profile and a realm's defaults,
# each a name -> value map under its own revision (compare-and-swap).
agent_profiles = Table(
    "agent_profiles",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("agent_id", String(128), nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("variables", Json, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("realm_id", "agent_id"),
    ForeignKeyConstraint(["realm_id"], ["realms.id"]),
)

realm_variables = Table(
    "realm_variables",
    metadata,
    Column("realm_id", String(63), nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("variables", Json, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("realm_id"),
    ForeignKeyConstraint(["realm_id"], ["realms.id"]),
)
