"""Node writes in parallel within a realm: the text swap shares the realm lock (ADR 0006).

`charter_swap_content` (migration 0007) took the realm row `FOR UPDATE` first and held it to
commit, so every text change in a realm queued behind the one before it, walk and all. Now it
takes the row `FOR KEY SHARE` (which text and attribute writes share, and which a structure
write's `FOR UPDATE` waits for, so the subtree it walks stands still), locks the directive
row, checks the revision and walks the owners below, all in parallel with writes on other
directives. Only then does it raise the realm revision: that UPDATE is the feed's sequencer,
its row lock held to commit, so revisions are still given out gapless and in commit order,
and the time it stores is never before the realm's last event. The directive row, the version
and the event are written after it, at that time.

Same signature and result as 0007's: `outcome` 'ok' (`directive` as written, the event's
`seq`, the affected `agents`), 'stale' (`directive` as it is now) or 'missing'.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_SIGNATURE = "(text, text, bigint, text, text, text, text, text, text, integer)"

_FUNCTION = """
CREATE FUNCTION charter_swap_content(
    p_realm text, p_id text, p_expected bigint, p_title text, p_body text, p_hash text,
    p_author text, p_message text, p_type text, p_walk_cap integer
)
RETURNS TABLE (outcome text, seq bigint, agents text[], directive directives)
LANGUAGE plpgsql VOLATILE
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    cur directives%ROWTYPE;
    done directives%ROWTYPE;
    owners text[];
    event_seq bigint;
    now_at timestamptz;
BEGIN
    -- Shared with other node writes; a move or a create waits for it, and it for them.
    PERFORM 1 FROM realms r WHERE r.id = p_realm FOR KEY SHARE;
    -- The node's own row lock: writers of one directive queue here, others do not.
    SELECT * INTO cur FROM directives d WHERE d.realm_id = p_realm AND d.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'missing'::text, NULL::bigint, NULL::text[], NULL::directives;
        RETURN;
    END IF;
    IF cur.revision <> p_expected THEN
        RETURN QUERY SELECT 'stale'::text, NULL::bigint, NULL::text[], cur;
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

    -- The sequencer, last of the locks: held from here to commit, it orders the feed.
    -- (GREATEST ignores a NULL clock: a realm that has no event yet.)
    UPDATE realms r SET revision = r.revision + 1,
                        clock = greatest(clock_timestamp(), r.clock)
    WHERE r.id = p_realm
    RETURNING r.revision, r.clock INTO event_seq, now_at;

    UPDATE directives d
    SET revision = d.revision + 1,
        latest_version = d.latest_version + 1,
        active_version = d.latest_version + 1,
        updated_at = now_at
    WHERE d.realm_id = p_realm AND d.id = p_id
    RETURNING * INTO done;

    INSERT INTO directive_versions
        (realm_id, directive_id, version, title, body, content_hash, author, message,
         based_on, created_at)
    VALUES (p_realm, p_id, done.latest_version, p_title, p_body, p_hash, p_author, p_message,
            cur.active_version, now_at);

    INSERT INTO events
        (realm_id, seq, type, directive_id, revision, version, actor, message, occurred_at,
         affected_agents, payload)
    VALUES (p_realm, event_seq, p_type, p_id, done.revision,
            done.active_version, p_author, p_message, now_at, to_jsonb(owners),
            jsonb_build_object('version', done.active_version,
                               'based_on', cur.active_version));

    RETURN QUERY SELECT 'ok'::text, event_seq, owners, done;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION charter_swap_content{_SIGNATURE}")
        op.execute(_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION charter_swap_content{_SIGNATURE}")
        op.execute(_previous_function())


def _previous_function() -> str:
    """Migration 0007's function, read from that migration rather than copied here."""
    path = Path(__file__).with_name("2026-12-01-0100_swap_row_and_clock.py")
    spec = importlib.util.spec_from_file_location("charter_migration_0007", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function: str = module._FUNCTION
    return function
