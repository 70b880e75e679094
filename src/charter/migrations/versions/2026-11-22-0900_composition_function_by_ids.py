"""Composition rows by primary key: the chain's ids first, then index lookups.

Revision 0004 joined the recursive chain against the whole realm: the planner cannot estimate
a recursive CTE and chose hash joins over every directive and version of the realm, so a cold
composition cost grew with the realm instead of with the agent. Collecting the chain into an
array first makes the final reads `= ANY(ids)` primary-key lookups; PL/pgSQL keeps the plan
between calls (a SQL function is planned on every call).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 09:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION charter_composition_rows(p_realm text, p_agent text)
RETURNS TABLE (
    id text, parent_id text, level text, status text, priority text, owner_agent_id text,
    injection_mode text, created_at timestamptz, revision bigint, active_version integer,
    title text, body text, realm_revision bigint
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
           (SELECT r.revision FROM realms r WHERE r.id = p_realm)
    FROM directives d
    LEFT JOIN directive_versions v
      ON v.realm_id = p_realm AND v.directive_id = d.id AND v.version = d.active_version
    WHERE d.realm_id = p_realm AND d.id = ANY((SELECT ids.list FROM ids)::varchar[]);
END $$
"""

_PREVIOUS = """
CREATE OR REPLACE FUNCTION charter_composition_rows(p_realm text, p_agent text)
RETURNS TABLE (
    id text, parent_id text, level text, status text, priority text, owner_agent_id text,
    injection_mode text, created_at timestamptz, revision bigint, active_version integer,
    title text, body text, realm_revision bigint
)
LANGUAGE sql VOLATILE AS $$
SELECT set_config('charter.realm', p_realm, true);
WITH RECURSIVE chain(id, parent_id) AS (
    SELECT d.id, d.parent_id FROM directives d
    WHERE d.realm_id = p_realm AND d.owner_agent_id = p_agent
    UNION
    SELECT d.id, d.parent_id FROM directives d JOIN chain c ON d.id = c.parent_id
    WHERE d.realm_id = p_realm
)
SELECT d.id::text, d.parent_id::text, d.level::text, d.status::text, d.priority::text,
       d.owner_agent_id::text, d.injection_mode::text, d.created_at, d.revision,
       d.active_version, v.title, v.body,
       (SELECT r.revision FROM realms r WHERE r.id = p_realm)
FROM directives d
LEFT JOIN directive_versions v
  ON v.realm_id = d.realm_id AND v.directive_id = d.id AND v.version = d.active_version
WHERE d.realm_id = p_realm AND d.id IN (SELECT chain.id FROM chain);
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION charter_composition_rows(text, text)")
        op.execute(_PREVIOUS)
