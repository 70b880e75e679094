"""Claims with leases, schedules, and the timers that make both happen on time.

- `directives` gains `not_before` (when work on it may be claimed) and `last_failure` (the
  last failed claim's code and time, §10).
- `claims`: one row per claim; the partial unique index `uq_claims_live` allows one live claim
  per directive, whatever the writers do.
- `schedules`: timed CAS writes on a directive (§8).
- `timers`: the due work of both, one row per live lease or pending schedule (ADR 0008). Its
  rows hold ids and times only, and every process reads them across realms to find what is
  due; they change only in a transaction that names their realm.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 01:30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)

_ISOLATED = ("claims", "schedules")

# Whoever may write directives may work with claims, schedules and timers (`charter migrate`
# grants the app role the same again).
_GRANT_LIKE_DIRECTIVES = """
DO $$
DECLARE grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT r.rolname FROM pg_class c, aclexplode(c.relacl) a
        JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = 'directives'::regclass AND a.privilege_type = 'UPDATE'
          AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON claims TO %I', grantee);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON schedules TO %I', grantee);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON timers TO %I', grantee);
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.add_column("directives", sa.Column("not_before", _TS, nullable=True))
    op.add_column("directives", sa.Column("last_failure", _JSON, nullable=True))
    op.create_table(
        "claims",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("directive_id", sa.String(40), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lease_seconds", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("error_code", sa.String(128), nullable=True),
        sa.Column("result", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("realm_id", "id", name="pk_claims"),
        sa.ForeignKeyConstraint(
            ["realm_id", "directive_id"],
            ["directives.realm_id", "directives.id"],
            name="fk_claims_realm_id_directive_id_directives",
        ),
    )
    op.create_index(
        "uq_claims_live",
        "claims",
        ["realm_id", "directive_id"],
        unique=True,
        postgresql_where=sa.text("state = 'live'"),
        sqlite_where=sa.text("state = 'live'"),
    )
    op.create_index("ix_claims_realm_id_directive_id", "claims", ["realm_id", "directive_id"])
    op.create_index("ix_claims_realm_id_agent_id", "claims", ["realm_id", "agent_id"])
    op.create_table(
        "schedules",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("directive_id", sa.String(40), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("action", _JSON, nullable=False),
        sa.Column("expected_revision", sa.BigInteger, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("creator", sa.String(40), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("ran_at", _TS, nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("realm_id", "id", name="pk_schedules"),
        sa.ForeignKeyConstraint(
            ["realm_id", "directive_id"],
            ["directives.realm_id", "directives.id"],
            name="fk_schedules_realm_id_directive_id_directives",
        ),
    )
    op.create_index("ix_schedules_realm_id_directive_id", "schedules", ["realm_id", "directive_id"])
    op.create_table(
        "timers",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("realm_id", "id", name="pk_timers"),
        sa.ForeignKeyConstraint(["realm_id"], ["realms.id"], name="fk_timers_realm_id_realms"),
    )
    op.create_index("ix_timers_realm_id_due_at", "timers", ["realm_id", "due_at"])
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _ISOLATED:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY realm_isolation ON {table} "
            "USING (realm_id = current_setting('charter.realm', true)) "
            "WITH CHECK (realm_id = current_setting('charter.realm', true))"
        )
    # Timers are read across realms (ids and times, nothing else) and written only for the
    # realm the transaction names, as realm rows are (0008).
    op.execute("ALTER TABLE timers ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE timers FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY timer_read ON timers FOR SELECT USING (true)")
    for verb in ("INSERT", "UPDATE", "DELETE"):
        check = "WITH CHECK" if verb == "INSERT" else "USING"
        op.execute(
            f"CREATE POLICY timer_{verb.lower()} ON timers FOR {verb} "
            f"{check} (realm_id = current_setting('charter.realm', true))"
        )
    op.execute(_GRANT_LIKE_DIRECTIVES)


def downgrade() -> None:
    op.drop_table("timers")
    op.drop_table("schedules")
    op.drop_table("claims")
    op.drop_column("directives", "last_failure")
    op.drop_column("directives", "not_before")
