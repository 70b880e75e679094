"""The `charter` command: serve, migrate, keys."""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
from collections.abc import Sequence

from charter.settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from charter.db.migrate import upgrade
    from charter.db.preflight import PreflightFailed, check_postgres

    if settings.is_sqlite:
        upgrade(settings.migration_url)
    else:
        try:
            warnings = asyncio.run(
                check_postgres(settings.database_url, allow_rls_bypass=settings.allow_rls_bypass)
            )
        except PreflightFailed as exc:
            print(f"charter: refusing to start: {exc}", file=sys.stderr)
            return 2
        for warning in warnings:
            print(warning, file=sys.stderr)
    secret = asyncio.run(_first_key(settings))
    if secret is not None:
        print(
            "charter: no API key existed, so an admin key was created. It is shown this once:\n"
            f"  {secret}\n"
            "Use it as `Authorization: Bearer <key>`; make others with POST /v1/keys.",
            file=sys.stderr,
        )

    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    # Granian over uvicorn, uvloop over its other loops: measured in ADR 0002.
    Server(
        "charter.app:app_from_env",
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
        backpressure=open_files_limit(),
        # Streams end at once on SIGTERM (signals.py); a worker that still has not stopped
        # after this long (a client that does not read its last bytes) is killed.
        workers_kill_timeout=settings.shutdown_timeout_seconds,
        log_access=args.access_log,
        log_level=LogLevels.info,
    ).serve()
    return 0


def open_files_limit() -> int:
    """Raise this process's open-file limit to its hard limit and return it.

    Every long-poll or event-stream watcher holds a request open, and granian by default
    serves at most 1 024 requests at once per worker (`backpressure`): watcher 1 025 would
    wait, unanswered, for another to leave. Each request needs a socket anyway, so the
    open-file limit (inherited by the workers) is the natural bound for both.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return max(1024, min(soft, 1 << 20))


async def _first_key(settings: Settings) -> str | None:
    from charter.db.session import Database
    from charter.services.keys import ensure_first_key

    db = Database.connect(settings.database_url, pool_size=1)
    try:
        return await ensure_first_key(db, settings.bootstrap_key)
    finally:
        await db.dispose()


async def _create_key(args: argparse.Namespace, settings: Settings) -> str:
    from charter.db.session import Database
    from charter.domain.access import Role
    from charter.services.keys import mint

    db = Database.connect(settings.database_url, pool_size=1)
    try:
        async with db.transaction() as conn:
            key, secret = await mint(
                conn, Role(args.role), args.realm or ["*"], args.agent_id, args.name
            )
    finally:
        await db.dispose()
    print(f"created {key.role} key {key.id}; the secret is shown this once:", file=sys.stderr)
    return secret


def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    from charter.errors import CharterError

    if settings.is_sqlite:
        from charter.db.migrate import upgrade

        upgrade(settings.migration_url)
    try:
        print(asyncio.run(_create_key(args, settings)))
    except CharterError as exc:
        print(f"charter: {exc.detail}", file=sys.stderr)
        return 2
    return 0


def _migrate(_: argparse.Namespace, settings: Settings) -> int:
    from charter.db.migrate import migrate

    role = migrate(settings.migration_url, settings.database_url)
    print("schema is at head" + (f"; app role {role!r} granted" if role else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="charter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--access-log", action="store_true", help="log every request line")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="migrate the schema (as its owner)")
    migrate.set_defaults(run=_migrate)

    keys = commands.add_parser("keys", help="API keys: create (in the database), list, revoke")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="mint a key and print its secret once")
    create.add_argument("--role", required=True, choices=["admin", "operator", "reader", "agent"])
    create.add_argument("--realm", action="append", help="a realm it may use (repeat); default *")
    create.add_argument("--agent-id", help="the agent an agent key stands for")
    create.add_argument("--name", help="who or what holds it")
    create.set_defaults(run=_keys_create)

    from charter.cli import register

    register(commands, key_commands, create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from charter.cli import dispatch

    client_code = dispatch(args)
    if client_code is not None:
        return client_code
    code: int = args.run(args, Settings.from_env())
    return code


if __name__ == "__main__":
    sys.exit(main())
