"""Console sessions: a signed-in browser, by the hash of its cookie (ADR 0011).

Every process reads the same rows, so a sign-out or a key's revocation ends the session
everywhere at the next request. The app role inserts sessions, ends them (`ended_at`) and
purges expired ones; it never changes which key a session stands for.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 01:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)

# Whoever may insert keys may keep sessions (`charter migrate` grants the app role the same).
_GRANT_LIKE_KEYS = """
DO $$
DECLARE grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT r.rolname FROM pg_class c, aclexplode(c.relacl) a
        JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = 'api_keys'::regclass AND a.privilege_type = 'SELECT'
          AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE (ended_at), DELETE ON console_sessions TO %I',
                       grantee);
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("ended_at", _TS),
        sa.PrimaryKeyConstraint("id", name="pk_console_sessions"),
        sa.UniqueConstraint("secret_hash", name="uq_console_sessions_secret_hash"),
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_GRANT_LIKE_KEYS)


def downgrade() -> None:
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_table("console_sessions")
