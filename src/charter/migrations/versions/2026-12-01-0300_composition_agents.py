"""Every agent a composition belongs to: agents with identical layers share a `cmp_` id.

`compositions.agent_id` names only the agent that first had the prompt, so another agent whose
prompt it also is could not resolve its own composition id. This table holds each
(composition, agent) pair; the existing records are carried over.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 03:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Row-level security is FORCEd on `compositions`, for the owner too: the copy names each realm
# in turn, as the application does.
_COPY = """
DO $$
DECLARE realm text;
BEGIN
    FOR realm IN SELECT r.id FROM realms r LOOP
        PERFORM set_config('charter.realm', realm, true);
        INSERT INTO composition_agents (realm_id, composition_id, agent_id)
        SELECT c.realm_id, c.id, c.agent_id FROM compositions c WHERE c.realm_id = realm;
    END LOOP;
    PERFORM set_config('charter.realm', '', true);
END $$
"""

# Whoever may record compositions may record their agents (`charter migrate` grants the app
# role the same again).
_GRANT_LIKE_COMPOSITIONS = """
DO $$
DECLARE grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT r.rolname FROM pg_class c, aclexplode(c.relacl) a
        JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = 'compositions'::regclass AND a.privilege_type = 'INSERT'
          AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT SELECT, INSERT ON composition_agents TO %I', grantee);
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "composition_agents",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("composition_id", sa.String(68), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint(
            "realm_id", "composition_id", "agent_id", name="pk_composition_agents"
        ),
        sa.ForeignKeyConstraint(
            ["realm_id", "composition_id"],
            ["compositions.realm_id", "compositions.id"],
            name="fk_composition_agents_realm_id_composition_id_compositions",
        ),
    )
    if op.get_bind().dialect.name != "postgresql":
        op.execute(
            "INSERT INTO composition_agents (realm_id, composition_id, agent_id) "
            "SELECT realm_id, id, agent_id FROM compositions"
        )
        return
    op.execute(_COPY)
    op.execute("ALTER TABLE composition_agents ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE composition_agents FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY realm_isolation ON composition_agents "
        "USING (realm_id = current_setting('charter.realm', true)) "
        "WITH CHECK (realm_id = current_setting('charter.realm', true))"
    )
    op.execute(_GRANT_LIKE_COMPOSITIONS)


def downgrade() -> None:
    op.drop_table("composition_agents")
