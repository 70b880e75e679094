"""A composition snapshot as one statement on PostgreSQL (one round trip, realm set inside).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 08:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# SECURITY INVOKER (the default): row-level security applies to the caller, keyed by the realm
# the function sets for its own statement. Called outside a transaction block, the setting is
# local to that one implicit transaction.
_FUNCTION = """
CREATE FUNCTION charter_composition_rows(p_realm text, p_agent text)
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
