"""Template variables: agents' profiles, realms' defaults, and the values a composition used
(DESIGN §9).

`agent_profiles` and `realm_variables` each hold a name -> value map under a revision of its
own (compare-and-swap). `compositions.variables` keeps the values a template's placeholders
took, so a composition id resolves to the same text forever.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 02:30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_Json = sa.JSON().with_variant(JSONB(), "postgresql")
_TABLES = ("agent_profiles", "realm_variables")

# Whoever may write directives may write these (`charter migrate` grants the app role the
# same again).
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
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON agent_profiles TO %I', grantee);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON realm_variables TO %I', grantee);
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "agent_profiles",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("variables", _Json, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("realm_id", "agent_id", name="pk_agent_profiles"),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["realms.id"], name="fk_agent_profiles_realm_id_realms"
        ),
    )
    op.create_table(
        "realm_variables",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("variables", _Json, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("realm_id", name="pk_realm_variables"),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["realms.id"], name="fk_realm_variables_realm_id_realms"
        ),
    )
    with op.batch_alter_table("compositions") as batch:
        batch.add_column(sa.Column("variables", _Json, nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY realm_isolation ON {table} "
            "USING (realm_id = current_setting('charter.realm', true)) "
            "WITH CHECK (realm_id = current_setting('charter.realm', true))"
        )
    op.execute(_GRANT_LIKE_DIRECTIVES)


def downgrade() -> None:
    with op.batch_alter_table("compositions") as batch:
        batch.drop_column("variables")
    op.drop_table("realm_variables")
    op.drop_table("agent_profiles")
