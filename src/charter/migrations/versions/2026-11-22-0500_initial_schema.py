"""Initial schema: realms, directives, immutable versions, the event outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)
_REALM_SCOPED = ("directives", "directive_versions", "events")


def _content_checks(dialect: str) -> list[sa.CheckConstraint]:
    # The body limit is in bytes of UTF-8, not characters: each dialect says so its own way.
    body_bytes = "octet_length(body)" if dialect == "postgresql" else "length(CAST(body AS BLOB))"
    title_chars = "char_length(title)" if dialect == "postgresql" else "length(title)"
    return [
        sa.CheckConstraint(
            f"{body_bytes} BETWEEN 1 AND 32768", name="ck_directive_versions_body_size"
        ),
        sa.CheckConstraint(
            f"{title_chars} BETWEEN 1 AND 256", name="ck_directive_versions_title_size"
        ),
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "realms",
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "directives",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(128)),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.String(40)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("owner_agent_id", sa.String(128)),
        sa.Column("injection_mode", sa.String(16), nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("active_version", sa.Integer),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("realm_id", "id", name="pk_directives"),
        sa.ForeignKeyConstraint(["realm_id"], ["realms.id"], name="fk_directives_realm_id_realms"),
        sa.ForeignKeyConstraint(
            ["realm_id", "parent_id"],
            ["directives.realm_id", "directives.id"],
            name="fk_directives_realm_id_parent_id_directives",
        ),
        sa.UniqueConstraint("realm_id", "key", name="uq_directives_realm_id_key"),
        sa.CheckConstraint("revision >= 1", name="ck_directives_revision_positive"),
    )
    op.create_index("ix_directives_realm_id_parent_id", "directives", ["realm_id", "parent_id"])
    op.create_index(
        "ix_directives_realm_id_owner_agent_id", "directives", ["realm_id", "owner_agent_id"]
    )
    op.create_table(
        "directive_versions",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("directive_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(71), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("based_on", sa.Integer),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint(
            "realm_id", "directive_id", "version", name="pk_directive_versions"
        ),
        sa.ForeignKeyConstraint(
            ["realm_id", "directive_id"],
            ["directives.realm_id", "directives.id"],
            name="fk_directive_versions_realm_id_directive_id_directives",
        ),
        *_content_checks(dialect),
    )
    op.create_table(
        "events",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("directive_id", sa.String(40), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("affected_agents", _JSON, nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("realm_id", "seq", name="pk_events"),
        sa.ForeignKeyConstraint(["realm_id"], ["realms.id"], name="fk_events_realm_id_realms"),
    )
    op.create_index(
        "ix_events_realm_id_directive_id_seq", "events", ["realm_id", "directive_id", "seq"]
    )
    if dialect == "postgresql":
        _postgres_guards()


def _postgres_guards() -> None:
    op.execute(
        """
        CREATE FUNCTION charter_refuse_version_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'directive versions are immutable (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER directive_versions_immutable BEFORE UPDATE OR DELETE "
        "ON directive_versions FOR EACH ROW EXECUTE FUNCTION charter_refuse_version_change()"
    )
    for table in _REALM_SCOPED:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY realm_isolation ON {table} "
            "USING (realm_id = current_setting('charter.realm', true)) "
            "WITH CHECK (realm_id = current_setting('charter.realm', true))"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_table("events")
    if dialect == "postgresql":
        op.execute("DROP TRIGGER directive_versions_immutable ON directive_versions")
    op.drop_table("directive_versions")
    op.drop_table("directives")
    op.drop_table("realms")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION charter_refuse_version_change()")
