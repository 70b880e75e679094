"""Webhooks: subscriptions, their delivery cursors, and the log of every delivery attempt.

- `webhooks`: the target, its signing secret and its filters. Realm-isolated like every
  realm-scoped table (row-level security, FORCEd).
- `webhook_cursors`: how far each webhook has been delivered, when it may be tried next, and
  who holds its delivery lease. Like `relay_cursors` it holds no secret and no target, and any
  transaction may read it, so one query finds the webhooks due in every realm; it is written
  only for the realm the transaction names.
- `webhook_deliveries`: one row per attempt (status code, latency, error class), never a body.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 01:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_REALM = "current_setting('charter.realm', true)"

_POLICIES = (
    "ALTER TABLE webhooks ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE webhooks FORCE ROW LEVEL SECURITY",
    f"CREATE POLICY realm_isolation ON webhooks USING (realm_id = {_REALM}) "
    f"WITH CHECK (realm_id = {_REALM})",
    "ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY",
    f"CREATE POLICY realm_isolation ON webhook_deliveries USING (realm_id = {_REALM}) "
    f"WITH CHECK (realm_id = {_REALM})",
    "ALTER TABLE webhook_cursors ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE webhook_cursors FORCE ROW LEVEL SECURITY",
    "CREATE POLICY cursor_read ON webhook_cursors FOR SELECT USING (true)",
    f"CREATE POLICY cursor_create ON webhook_cursors FOR INSERT WITH CHECK (realm_id = {_REALM})",
    f"CREATE POLICY cursor_write ON webhook_cursors FOR UPDATE USING (realm_id = {_REALM}) "
    f"WITH CHECK (realm_id = {_REALM})",
    f"CREATE POLICY cursor_remove ON webhook_cursors FOR DELETE USING (realm_id = {_REALM})",
)

# Whoever may write events may keep webhooks (`charter migrate` grants the app role the same).
_GRANT_LIKE_EVENTS = """
DO $$
DECLARE grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT r.rolname FROM pg_class c, aclexplode(c.relacl) a
        JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = 'events'::regclass AND a.privilege_type = 'INSERT'
          AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT SELECT, INSERT, DELETE ON webhooks TO %I', grantee);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_cursors TO %I', grantee);
        EXECUTE format('GRANT SELECT, INSERT, DELETE ON webhook_deliveries TO %I', grantee);
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("event_types", _JSON, nullable=False),
        sa.Column("agents", _JSON, nullable=True),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("realm_id", "id", name="pk_webhooks"),
        sa.ForeignKeyConstraint(["realm_id"], ["realms.id"], name="fk_webhooks_realm_id_realms"),
    )
    op.create_table(
        "webhook_cursors",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("webhook_id", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("delivered_seq", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(40), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("realm_id", "webhook_id", name="pk_webhook_cursors"),
        sa.ForeignKeyConstraint(
            ["realm_id", "webhook_id"],
            ["webhooks.realm_id", "webhooks.id"],
            name="fk_webhook_cursors_realm_id_webhook_id_webhooks",
        ),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("webhook_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.String(80), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(64), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("realm_id", "id", name="pk_webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["realm_id", "webhook_id"],
            ["webhooks.realm_id", "webhooks.id"],
            name="fk_webhook_deliveries_realm_id_webhook_id_webhooks",
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_realm_id_webhook_id_id",
        "webhook_deliveries",
        ["realm_id", "webhook_id", "id"],
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _POLICIES:
        op.execute(statement)
    op.execute(_GRANT_LIKE_EVENTS)


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_realm_id_webhook_id_id", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_cursors")
    op.drop_table("webhooks")
