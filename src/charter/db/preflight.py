"""Checks the server makes before it accepts a request on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from charter.db.migrate import current_revision, head_revision


class PreflightFailed(Exception):
    """The server must not start; the message says how to fix it."""


async def check_postgres(url: str, *, allow_rls_bypass: bool) -> list[str]:
    """Refuse an outdated schema or an app role that could see past row-level security.

    Returns warnings to print loudly when the developer override let a problem through.
    """
    current, head = await current_revision(url), head_revision()
    if current != head:
        raise PreflightFailed(
            f"the schema is at {current or 'nothing'}, this server needs {head}: "
            "run `charter migrate` (as the schema owner, CHARTER_ADMIN_DATABASE_URL)"
        )
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles "
                        "WHERE rolname = current_user"
                    )
                )
            ).one()
            owned = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                        "AND tableowner = current_user"
                    )
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    problems = []
    if row.rolsuper or row.rolbypassrls:
        problems.append(f"role {row.current_user!r} is a superuser or has BYPASSRLS")
    if owned:
        problems.append(f"role {row.current_user!r} owns {owned} table(s)")
    if not problems:
        return []
    advice = (
        "; connect the server as an app role (CHARTER_DATABASE_URL) and migrate as the schema "
        "owner (CHARTER_ADMIN_DATABASE_URL): `charter migrate` creates the app role and its "
        "grants. CHARTER_ALLOW_RLS_BYPASS=1 overrides this for development only."
    )
    message = "row-level security would not protect tenants: " + "; ".join(problems) + advice
    if not allow_rls_bypass:
        raise PreflightFailed(message)
    return ["WARNING: CHARTER_ALLOW_RLS_BYPASS=1: " + message]
