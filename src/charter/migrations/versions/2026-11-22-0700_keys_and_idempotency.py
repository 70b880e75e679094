"""API keys (hashed secrets) and idempotency records.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 07:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Keys span realms (a key may hold several, or all): like `realms`, not realm-scoped.
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("realms", _JSON, nullable=False),
        sa.Column("agent_id", sa.String(128)),
        sa.Column("name", sa.String(256)),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("secret_hash", name="uq_api_keys_secret_hash"),
    )
    op.create_table(
        "idempotency_records",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("caller", sa.String(40), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("headers", _JSON, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint(
            "realm_id", "caller", "method", "path", "key", name="pk_idempotency_records"
        ),
    )
    op.create_index(
        "ix_idempotency_records_realm_id_created_at",
        "idempotency_records",
        ["realm_id", "created_at"],
    )
    if dialect == "postgresql":
        op.execute("ALTER TABLE idempotency_records ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE idempotency_records FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY realm_isolation ON idempotency_records "
            "USING (realm_id = current_setting('charter.realm', true)) "
            "WITH CHECK (realm_id = current_setting('charter.realm', true))"
        )


def downgrade() -> None:
    op.drop_table("idempotency_records")
    op.drop_table("api_keys")
