"""Schema migrations (Alembic) and the app role they grant to on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine


@contextmanager
def alembic_config(url: str) -> Iterator[Config]:
    """Alembic's configuration for `url`, with the history shipped in the package.

    The migrations are package data (`charter/migrations/`), found through
    importlib.resources wherever the package is installed; `as_file` gives Alembic a real
    directory for as long as the block runs (the package's own, unless it was imported from
    an archive).
    """
    with resources.as_file(resources.files("charter") / "migrations") as location:
        config = Config()
        config.set_main_option("script_location", str(location))
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        yield config


def upgrade(url: str) -> None:
    """Migrate the schema to head (synchronous: call it before an event loop runs)."""
    with alembic_config(url) as config:
        command.upgrade(config, "head")


def head_revision() -> str | None:
    with alembic_config("sqlite://") as config:
        return ScriptDirectory.from_config(config).get_current_head()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


APP_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    # Realm rows change only by their revision counter and feed clock, only in a transaction
    # that names the realm (row-level security), and never downwards (a trigger): 0007, 0008.
    "GRANT SELECT, INSERT (id, name, created_at), UPDATE (revision, clock) ON realms TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON directives TO {role}",
    # Versions are immutable: the app may add them and read them, nothing else.
    "GRANT SELECT, INSERT ON directive_versions TO {role}",
    "GRANT SELECT, INSERT ON events TO {role}",
    "GRANT SELECT, INSERT ON compositions TO {role}",
    "GRANT SELECT, INSERT ON composition_agents TO {role}",
    "GRANT SELECT, INSERT ON rollout_outcomes TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON relay_cursors TO {role}",
    # Webhooks are made and deleted, never changed; their cursors move; attempts are logged.
    "GRANT SELECT, INSERT, DELETE ON webhooks TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_cursors TO {role}",
    "GRANT SELECT, INSERT, DELETE ON webhook_deliveries TO {role}",
    # Template variables: a profile or the defaults are replaced whole (0015).
    "GRANT SELECT, INSERT, UPDATE ON agent_profiles TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON realm_variables TO {role}",
    # Keys are made and revoked, never changed: no UPDATE of role, realms or secret, no DELETE.
    "GRANT SELECT, INSERT (id, secret_hash, role, realms, agent_id, name, created_at), "
    "UPDATE (revoked_at) ON api_keys TO {role}",
    # Console sessions are ended (ended_at) and purged once expired, never re-pointed.
    "GRANT SELECT, INSERT, UPDATE (ended_at), DELETE ON console_sessions TO {role}",
    # Idempotency records are purged by DELETE after retention.
    "GRANT SELECT, INSERT, DELETE ON idempotency_records TO {role}",
    # Claims and schedules change state, never go away; a timer is deleted once its work is
    # done (0012, ADR 0008).
    "GRANT SELECT, INSERT, UPDATE ON claims TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON schedules TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON timers TO {role}",
    # The server's preflight reads the schema revision as the app role.
    "GRANT SELECT ON alembic_version TO {role}",
)


async def grant_app_role(admin_url: str, app_url: str) -> str | None:
    """Create the app's login role if needed and grant it exactly what it needs.

    Does nothing when the app connects as the schema owner (the same user): the server's
    preflight then refuses to start, which is the point.
    """
    admin, app = make_url(admin_url), make_url(app_url)
    if not app.drivername.startswith("postgresql") or not app.username:
        return None
    if app.username == admin.username:
        return None
    role = '"' + app.username.replace('"', '""') + '"'
    engine = create_async_engine(admin_url)
    try:
        async with engine.begin() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": app.username}
            )
            if not exists:
                await conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS"))
            if app.password:
                password = app.password.replace("'", "''")
                await conn.execute(text(f"ALTER ROLE {role} PASSWORD '{password}'"))
            # Exactly these grants, whatever an older version granted: revoking a table
            # privilege revokes the same privilege on each of its columns too.
            await conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"))
            for grant in APP_GRANTS:
                await conn.execute(text(grant.format(role=role)))
    finally:
        await engine.dispose()
    return app.username


def migrate(admin_url: str, app_url: str) -> str | None:
    """`charter migrate`: schema to head, then the app role's grants."""
    upgrade(admin_url)
    return asyncio.run(grant_app_role(admin_url, app_url))
