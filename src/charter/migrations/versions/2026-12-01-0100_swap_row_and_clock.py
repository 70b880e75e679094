"""The text swap returns the directive row whole; every realm keeps a clock for its feed.

`realms.clock` is the time of the realm's latest event. A write takes its time under the
realm lock, as the later of the wall clock and this one, and stores it back, so along a
realm's feed `occurred_at` never decreases (whichever process, clock or path wrote it).

`charter_swap_content` (migration 0006) took its time from the caller, read before the realm
lock, so a writer that waited on the lock could commit an earlier time than the one before
it. It now takes the time under the lock (`clock_timestamp()`, kept after the realm's clock),
takes the event type from the caller (`charter.domain.events.EventType` is its one list), and
returns the directive as a row of the table's own type (`directive`), so the caller names no
columns: a column added to `directives` is returned without touching the function.

Returns one row: `outcome` 'ok' (`directive` as written, the event's `seq`, the affected
`agents`), 'stale' (`directive` as it is now) or 'missing' (`directive` NULL).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 01:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OLD_SIGNATURE = "(text, text, bigint, text, text, text, text, text, timestamptz, integer)"
_NEW_SIGNATURE = "(text, text, bigint, text, text, text, text, text, text, integer)"

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
    last_clock timestamptz;
    now_at timestamptz;
BEGIN
    SELECT r.clock INTO last_clock FROM realms r WHERE r.id = p_realm FOR UPDATE;
    -- The time is taken here, under the lock, and never before the realm's last event.
    -- (GREATEST ignores a NULL clock: a realm that has no event yet.)
    now_at := greatest(clock_timestamp(), last_clock);
    SELECT * INTO cur FROM directives d WHERE d.realm_id = p_realm AND d.id = p_id;
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

    UPDATE realms r SET revision = r.revision + 1, clock = now_at WHERE r.id = p_realm
    RETURNING r.revision INTO event_seq;

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


_BACKFILL = """
DO $$
DECLARE
    realm text;
BEGIN
    FOR realm IN SELECT r.id FROM realms r LOOP
        PERFORM set_config('charter.realm', realm, true);
        UPDATE realms r SET clock = (SELECT max(e.occurred_at) FROM events e
                                     WHERE e.realm_id = realm)
        WHERE r.id = realm;
    END LOOP;
    PERFORM set_config('charter.realm', '', true);
END $$
"""


def upgrade() -> None:
    with op.batch_alter_table("realms") as batch:
        batch.add_column(sa.Column("clock", sa.DateTime(timezone=True), nullable=True))
    # Existing realms start their clock at their latest event (on PostgreSQL realm by realm:
    # row-level security shows the owner too only the events of the realm it has set).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_BACKFILL)
        op.execute(f"DROP FUNCTION charter_swap_content{_OLD_SIGNATURE}")
        op.execute(_FUNCTION)
    else:
        op.execute(
            "UPDATE realms SET clock = (SELECT max(e.occurred_at) FROM events e"
            " WHERE e.realm_id = realms.id)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION charter_swap_content{_NEW_SIGNATURE}")
        op.execute(_previous_function())
    with op.batch_alter_table("realms") as batch:
        batch.drop_column("clock")


def _previous_function() -> str:
    """Migration 0006's function, read from that migration rather than copied here."""
    path = Path(__file__).with_name("2026-11-30-0700_content_swap_function.py")
    spec = importlib.util.spec_from_file_location("charter_migration_0006", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function: str = module._FUNCTION
    return function
