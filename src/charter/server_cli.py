"""The server side of the `charter` command: serve, migrate, keys create, backup.

`charter.__main__` imports this module only when one of these commands runs, so the
client-side commands work where only the client is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import sqlite3
import sys
from pathlib import Path

from granian.constants import Interfaces, Loops
from granian.log import LogLevels
from granian.server import Server
from sqlalchemy.engine import make_url

from charter.db.migrate import migrate as migrate_schema
from charter.db.migrate import upgrade
from charter.db.preflight import PreflightFailed, check_postgres
from charter.db.session import Database
from charter.domain.access import Role
from charter.errors import CharterError
from charter.services.keys import ensure_first_key, mint
from charter.settings import Settings


def run(command: str, args: argparse.Namespace) -> int:
    """Run the server-side `command` ('serve', 'migrate', 'keys_create' or 'backup')."""
    return COMMANDS[command](args, Settings.from_env())


def serve(args: argparse.Namespace, settings: Settings) -> int:
    taken = address_in_use(args.host, args.port)
    if taken is not None:
        print(f"charter: cannot listen on {args.host}:{args.port}: {taken}", file=sys.stderr)
        return 2
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
        log_access=args.access_log,
        log_level=LogLevels.info,
    ).serve()
    return 0


def address_in_use(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, or None if it can (checked by binding it).

    granian binds only after it has started, and a refusal there is a page of Python and Rust
    traces; this says it in a line, before anything starts. (A port taken in the instant
    between this check and granian's bind still gets granian's own error.)
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as granian binds
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


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
    db = Database.connect(settings.database_url, pool_size=1)
    try:
        return await ensure_first_key(db, settings.bootstrap_key)
    finally:
        await db.dispose()


async def _create_key(args: argparse.Namespace, settings: Settings) -> str:
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


def keys_create(args: argparse.Namespace, settings: Settings) -> int:
    if settings.is_sqlite:
        upgrade(settings.migration_url)
    try:
        print(asyncio.run(_create_key(args, settings)))
    except CharterError as exc:
        print(f"charter: {exc.detail}", file=sys.stderr)
        return 2
    return 0


def migrate(_: argparse.Namespace, settings: Settings) -> int:
    role = migrate_schema(settings.migration_url, settings.database_url)
    print("schema is at head" + (f"; app role {role!r} granted" if role else ""))
    return 0


def backup(args: argparse.Namespace, settings: Settings) -> int:
    """Copy the embedded SQLite database to `args.path` while the server keeps running.

    SQLite's online backup API copies every page in one step inside a read transaction: the
    copy is the database as of one commit, and (the database being in WAL mode) writers go on
    meanwhile. The copy is written beside the target, checked, then renamed over it, so a
    failed backup leaves no partial file.
    """
    if not settings.is_sqlite:
        return _refuse(
            "charter backup copies the embedded SQLite database; on PostgreSQL use pg_dump"
            " (docs/backup.md)"
        )
    name = make_url(settings.database_url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return _refuse(f"charter backup: no database file in CHARTER_DATABASE_URL ({name!r})")
    source = Path(name).resolve()
    target = Path(args.path).resolve()
    if not source.is_file():
        return _refuse(f"charter backup: no database at {source}")
    if target == source:
        return _refuse("charter backup: the target is the database itself")
    if target.exists() and not args.force:
        return _refuse(f"charter backup: {target} exists; pass --force to replace it")
    if not target.parent.is_dir():
        return _refuse(f"charter backup: no directory {target.parent}")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        _copy(source, partial)
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as exc:
        return _refuse(f"charter backup: {source} to {target} failed: {exc}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    print(f"backed up {source} to {target} ({target.stat().st_size} bytes)")
    return 0


def _copy(source: Path, target: Path) -> None:
    # mode=rw: never create a database that is not there. The timeout rides out a checkpoint.
    src = sqlite3.connect(f"{source.as_uri()}?mode=rw", uri=True, timeout=30.0)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # pages=-1: all of them, in one step
            (verdict,) = dst.execute("PRAGMA integrity_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"the copy failed its integrity check: {verdict}")
        finally:
            dst.close()
    finally:
        src.close()


def _refuse(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


COMMANDS = {"serve": serve, "migrate": migrate, "keys_create": keys_create, "backup": backup}
