"""Composition records (resolvable forever) and the outbox relay's cursors.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "compositions",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("id", sa.String(68), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("renderer_version", sa.Integer, nullable=False),
        sa.Column("injection_mode", sa.String(16), nullable=False),
        sa.Column("layers", _JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("realm_id", "id", name="pk_compositions"),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["realms.id"], name="fk_compositions_realm_id_realms"
        ),
    )
    # Holds only numbers, like `realms`: the relay reads every realm's cursor in one query.
    op.create_table(
        "relay_cursors",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("delivered_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("realm_id", name="pk_relay_cursors"),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["realms.id"], name="fk_relay_cursors_realm_id_realms"
        ),
    )
    if dialect == "postgresql":
        op.execute("ALTER TABLE compositions ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE compositions FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY realm_isolation ON compositions "
            "USING (realm_id = current_setting('charter.realm', true)) "
            "WITH CHECK (realm_id = current_setting('charter.realm', true))"
        )


def downgrade() -> None:
    op.drop_table("relay_cursors")
    op.drop_table("compositions")
