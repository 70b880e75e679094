"""The locked part of a text change as one function: the realm lock is held for microseconds.

A PATCH that changes only a directive's title or body is the common write. Issued statement
by statement, it held the realm's write lock across six round trips and as many Python
awaits, so writers in a realm queued on the event loop as much as on PostgreSQL. Here the
whole locked part — take the realm lock, check the expected revision, find the owners below,
swap the row, add the version, raise the realm revision, append the event — is one call.
The caller still reads the directive first (outside the lock) to merge and hash the content;
the revision check under the lock proves that read was current.

Returns one row: `outcome` is 'ok' (the row as written, the event's seq and the affected
agents), 'stale' (`revision` is the current one) or 'missing'.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 07:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE FUNCTION charter_swap_content(
    p_realm text, p_id text, p_expected bigint, p_title text, p_body text, p_hash text,
    p_author text, p_message text, p_now timestamptz, p_walk_cap integer
)
RETURNS TABLE (
    outcome text, revision bigint, seq bigint, agents text[],
    key text, level text, parent_id text, status text, priority text, owner_agent_id text,
    injection_mode text, metadata jsonb, active_version integer, latest_version integer,
    created_at timestamptz, updated_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    cur directives%ROWTYPE;
    done directives%ROWTYPE;
    owners text[];
    event_seq bigint;
BEGIN
    PERFORM 1 FROM realms r WHERE r.id = p_realm FOR UPDATE;
    SELECT * INTO cur FROM directives d WHERE d.realm_id = p_realm AND d.id = p_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'missing'::text, NULL::bigint, NULL::bigint, NULL::text[],
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL::jsonb, NULL::integer,
            NULL::integer, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    IF cur.revision <> p_expected THEN
        RETURN QUERY SELECT 'stale'::text, cur.revision, NULL::bigint, NULL::text[],
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL::jsonb, NULL::integer,
            NULL::integer, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;

    -- The audience: every owner in the subtree, the node included, in code-point order.
    WITH RECURSIVE below(id, owner, depth) AS (
        SELECT d.id, d.owner_agent_id, 0 FROM directives d
        WHERE d.realm_id = p_realm AND d.id = p_id
        UNION ALL
        SELECT d.id, d.owner_agent_id, b.depth + 1 FROM below b
        JOIN directives d ON d.realm_id = p_realm AND d.parent_id = b.id
        WHERE b.depth < p_walk_cap
    )
    SELECT coalesce(array_agg(o.owner ORDER BY o.owner), '{}') INTO owners
    FROM (SELECT DISTINCT below.owner::text COLLATE "C" AS owner FROM below
          WHERE below.owner IS NOT NULL) AS o;

    UPDATE directives d
    SET revision = d.revision + 1,
        latest_version = d.latest_version + 1,
        active_version = d.latest_version + 1,
        updated_at = p_now
    WHERE d.realm_id = p_realm AND d.id = p_id
    RETURNING * INTO done;

    INSERT INTO directive_versions
        (realm_id, directive_id, version, title, body, content_hash, author, message,
         based_on, created_at)
    VALUES (p_realm, p_id, done.latest_version, p_title, p_body, p_hash, p_author, p_message,
            cur.active_version, p_now);

    UPDATE realms r SET revision = r.revision + 1 WHERE r.id = p_realm
    RETURNING r.revision INTO event_seq;

    INSERT INTO events
        (realm_id, seq, type, directive_id, revision, version, actor, message, occurred_at,
         affected_agents, payload)
    VALUES (p_realm, event_seq, 'directive.version_created', p_id, done.revision,
            done.active_version, p_author, p_message, p_now, to_jsonb(owners),
            jsonb_build_object('version', done.active_version,
                               'based_on', cur.active_version));

    RETURN QUERY SELECT 'ok'::text, done.revision, event_seq, owners,
        done.key::text, done.level::text, done.parent_id::text, done.status::text,
        done.priority::text, done.owner_agent_id::text, done.injection_mode::text,
        done.metadata, done.active_version, done.latest_version, done.created_at,
        done.updated_at;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION charter_swap_content"
            "(text, text, bigint, text, text, text, text, text, timestamptz, integer)"
        )
