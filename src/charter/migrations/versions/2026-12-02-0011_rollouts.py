"""Rollouts: a directive's running rollout, the outcomes its arms collect, and compositions
that show each agent the version of its arm (DESIGN §8).

`directives.rollout` holds the running rollout (null when none): its `rol_` id, candidate
version, percent in basis points, pinned agents and guard. `rollout_outcomes` holds each
outcome attributed to a running rollout's arm. The composition function returns the rollout
and the candidate version's text beside each row, so a cold composition stays one round trip.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_Json = sa.JSON().with_variant(JSONB(), "postgresql")

_FUNCTION = """
CREATE FUNCTION charter_composition_rows(p_realm text, p_agent text)
RETURNS TABLE (
    id text, parent_id text, level text, status text, priority text, owner_agent_id text,
    injection_mode text, created_at timestamptz, revision bigint, active_version integer,
    title text, body text, realm_revision bigint,
    rollout jsonb, candidate_title text, candidate_body text
)
LANGUAGE plpgsql VOLATILE
-- The walk is a handful of primary-key hops: never let an estimate turn it into realm scans.
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
BEGIN
    PERFORM set_config('charter.realm', p_realm, true);
    RETURN QUERY
    WITH RECURSIVE chain(node, up) AS (
        SELECT d.id, d.parent_id FROM directives d
        WHERE d.realm_id = p_realm AND d.owner_agent_id = p_agent
        UNION
        SELECT d.id, d.parent_id FROM chain c
        JOIN directives d ON d.realm_id = p_realm AND d.id = c.up
    ),
    ids AS MATERIALIZED (SELECT array_agg(chain.node) AS list FROM chain)
    SELECT d.id::text, d.parent_id::text, d.level::text, d.status::text, d.priority::text,
           d.owner_agent_id::text, d.injection_mode::text, d.created_at, d.revision,
           d.active_version, v.title, v.body,
           (SELECT r.revision FROM realms r WHERE r.id = p_realm),
           d.rollout, cv.title, cv.body
    FROM directives d
    LEFT JOIN directive_versions v
      ON v.realm_id = p_realm AND v.directive_id = d.id AND v.version = d.active_version
    LEFT JOIN directive_versions cv
      ON cv.realm_id = p_realm AND cv.directive_id = d.id
     AND cv.version = (d.rollout ->> 'version')::integer
    WHERE d.realm_id = p_realm AND d.id = ANY((SELECT ids.list FROM ids)::varchar[]);
END $$
"""

_PREVIOUS = """
CREATE FUNCTION charter_composition_rows(p_realm text, p_agent text)
RETURNS TABLE (
    id text, parent_id text, level text, status text, priority text, owner_agent_id text,
    injection_mode text, created_at timestamptz, revision bigint, active_version integer,
    title text, body text, realm_revision bigint
)
LANGUAGE plpgsql VOLATILE
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
BEGIN
    PERFORM set_config('charter.realm', p_realm, true);
    RETURN QUERY
    WITH RECURSIVE chain(node, up) AS (
        SELECT d.id, d.parent_id FROM directives d
        WHERE d.realm_id = p_realm AND d.owner_agent_id = p_agent
        UNION
        SELECT d.id, d.parent_id FROM chain c
        JOIN directives d ON d.realm_id = p_realm AND d.id = c.up
    ),
    ids AS MATERIALIZED (SELECT array_agg(chain.node) AS list FROM chain)
    SELECT d.id::text, d.parent_id::text, d.level::text, d.status::text, d.priority::text,
           d.owner_agent_id::text, d.injection_mode::text, d.created_at, d.revision,
           d.active_version, v.title, v.body,
           (SELECT r.revision FROM realms r WHERE r.id = p_realm)
    FROM directives d
    LEFT JOIN directive_versions v
      ON v.realm_id = p_realm AND v.directive_id = d.id AND v.version = d.active_version
    WHERE d.realm_id = p_realm AND d.id = ANY((SELECT ids.list FROM ids)::varchar[]);
END $$
"""

# Whoever may record compositions may record outcomes (`charter migrate` grants the app role
# the same again).
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
        EXECUTE format('GRANT SELECT, INSERT ON rollout_outcomes TO %I', grantee);
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.add_column("directives", sa.Column("rollout", _Json, nullable=True))
    op.create_table(
        "rollout_outcomes",
        sa.Column("realm_id", sa.String(63), nullable=False),
        sa.Column("rollout_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("directive_id", sa.String(40), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("composition_id", sa.String(68), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("realm_id", "rollout_id", "id", name="pk_rollout_outcomes"),
        sa.ForeignKeyConstraint(
            ["realm_id", "directive_id"],
            ["directives.realm_id", "directives.id"],
            name="fk_rollout_outcomes_realm_id_directive_id_directives",
        ),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE rollout_outcomes ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE rollout_outcomes FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY realm_isolation ON rollout_outcomes "
        "USING (realm_id = current_setting('charter.realm', true)) "
        "WITH CHECK (realm_id = current_setting('charter.realm', true))"
    )
    op.execute(_GRANT_LIKE_COMPOSITIONS)
    op.execute("DROP FUNCTION charter_composition_rows(text, text)")
    op.execute(_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION charter_composition_rows(text, text)")
        op.execute(_PREVIOUS)
    op.drop_table("rollout_outcomes")
    with op.batch_alter_table("directives") as batch:
        batch.drop_column("rollout")
