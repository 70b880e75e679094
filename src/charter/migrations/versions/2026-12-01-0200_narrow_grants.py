"""Narrow grants: the app role cannot raise a key's role or realms, or touch another realm's row.

Before this revision the app role held table-wide INSERT and UPDATE on `api_keys` and `realms`,
so anyone running SQL as it (an injection, a compromised process) could make any key an admin
key of every realm, or rewrite another tenant's realm row. Now (docs/security.md):

- `api_keys`: the app inserts keys (without a revocation time) and may UPDATE only
  `revoked_at`; a trigger refuses, for every role, the owner included, any change of a key's
  id, secret hash, role, realms, agent, name or creation time, and any change to a revoked
  key (revocation is final). No DELETE.
- `realms`: the app inserts realms (the revision starts at its default, 0) and may UPDATE only
  `revision` and `clock` (the time of the realm's last event, migration 0007), only of the
  realm its transaction names (row-level security), and a trigger refuses a revision that
  goes down. No DELETE.
- `relay_cursors`: written only for the realm the transaction names (row-level security).

The migration narrows whatever roles already hold the old grants; `charter migrate` then grants
the app role exactly `charter.db.migrate.APP_GRANTS`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 02:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_KEY_INSERT = "id, secret_hash, role, realms, agent_id, name, created_at"
_REALM_INSERT = "id, name, created_at"

_GUARDS = (
    """
    CREATE FUNCTION charter_refuse_key_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'api keys change only by being revoked, once'
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    """
    CREATE TRIGGER api_keys_only_revoked BEFORE UPDATE ON api_keys FOR EACH ROW
    WHEN (
        (OLD.id, OLD.secret_hash, OLD.role, OLD.realms, OLD.agent_id, OLD.name, OLD.created_at)
            IS DISTINCT FROM
        (NEW.id, NEW.secret_hash, NEW.role, NEW.realms, NEW.agent_id, NEW.name, NEW.created_at)
        OR OLD.revoked_at IS NOT NULL
        OR NEW.revoked_at IS NULL
    )
    EXECUTE FUNCTION charter_refuse_key_change()
    """,
    """
    CREATE FUNCTION charter_refuse_realm_rewind() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'a realm revision never goes down, and a realm keeps its id'
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    # WHEN is evaluated without calling the function: every write raises the revision, and
    # calls nothing on the way (docs/security.md has the measured cost).
    """
    CREATE TRIGGER realms_revision_rises BEFORE UPDATE ON realms FOR EACH ROW
    WHEN (NEW.revision < OLD.revision OR NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION charter_refuse_realm_rewind()
    """,
    # Realm rows stay readable by every transaction (a realm list, the relay's pass over every
    # realm); they change only in a transaction that names them.
    "ALTER TABLE realms ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE realms FORCE ROW LEVEL SECURITY",
    "CREATE POLICY realm_read ON realms FOR SELECT USING (true)",
    "CREATE POLICY realm_create ON realms FOR INSERT WITH CHECK (true)",
    "CREATE POLICY realm_write ON realms FOR UPDATE "
    "USING (id = current_setting('charter.realm', true)) "
    "WITH CHECK (id = current_setting('charter.realm', true))",
    "ALTER TABLE relay_cursors ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE relay_cursors FORCE ROW LEVEL SECURITY",
    "CREATE POLICY cursor_read ON relay_cursors FOR SELECT USING (true)",
    "CREATE POLICY cursor_create ON relay_cursors FOR INSERT "
    "WITH CHECK (realm_id = current_setting('charter.realm', true))",
    "CREATE POLICY cursor_write ON relay_cursors FOR UPDATE "
    "USING (realm_id = current_setting('charter.realm', true)) "
    "WITH CHECK (realm_id = current_setting('charter.realm', true))",
)

# For each role (not the owner) holding a privilege on a table, run `statements`, each with
# %1$I standing for the role's name.
_FOR_HOLDERS = """
DO $$
DECLARE grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT r.rolname FROM pg_class c, aclexplode(c.relacl) a
        JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = '{table}'::regclass AND a.privilege_type = '{privilege}'
          AND a.grantee <> c.relowner
    LOOP
{statements}
    END LOOP;
END $$
"""

# The same, for roles holding a column privilege (after the upgrade) on the table.
_FOR_COLUMN_HOLDERS = """
DO $$
DECLARE grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT r.rolname FROM pg_attribute t, aclexplode(t.attacl) a
        JOIN pg_roles r ON r.oid = a.grantee
        WHERE t.attrelid = '{table}'::regclass AND a.privilege_type = '{privilege}'
    LOOP
{statements}
    END LOOP;
END $$
"""


def _each(*statements: str) -> str:
    return "\n".join(f"        EXECUTE format('{statement}', grantee);" for statement in statements)


def _narrow(table: str, insert_columns: str, update_columns: str) -> None:
    statements = _each(
        f"REVOKE INSERT, UPDATE ON {table} FROM %1$I",
        f"GRANT INSERT ({insert_columns}), UPDATE ({update_columns}) ON {table} TO %1$I",
    )
    op.execute(_FOR_HOLDERS.format(table=table, privilege="UPDATE", statements=statements))


def _widen(table: str) -> None:
    statements = _each(f"GRANT INSERT, UPDATE ON {table} TO %1$I")
    op.execute(_FOR_COLUMN_HOLDERS.format(table=table, privilege="UPDATE", statements=statements))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _GUARDS:
        op.execute(statement)
    _narrow("api_keys", _KEY_INSERT, "revoked_at")
    _narrow("realms", _REALM_INSERT, "revision, clock")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _widen("api_keys")
    _widen("realms")
    for statement in (
        "DROP POLICY cursor_write ON relay_cursors",
        "DROP POLICY cursor_create ON relay_cursors",
        "DROP POLICY cursor_read ON relay_cursors",
        "ALTER TABLE relay_cursors NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE relay_cursors DISABLE ROW LEVEL SECURITY",
        "DROP POLICY realm_write ON realms",
        "DROP POLICY realm_create ON realms",
        "DROP POLICY realm_read ON realms",
        "ALTER TABLE realms NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE realms DISABLE ROW LEVEL SECURITY",
        "DROP TRIGGER realms_revision_rises ON realms",
        "DROP FUNCTION charter_refuse_realm_rewind()",
        "DROP TRIGGER api_keys_only_revoked ON api_keys",
        "DROP FUNCTION charter_refuse_key_change()",
    ):
        op.execute(statement)
