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
import shutil
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from granian.constants import Interfaces, Loops
from granian.log import LogLevels
from granian.server import Server
from prometheus_client import values as prometheus_values
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from charter.cli import exits
from charter.db.migrate import migrate as migrate_schema
from charter.db.migrate import upgrade
from charter.db.preflight import PreflightFailed, check_postgres
from charter.db.serving_lock import serving_lock
from charter.db.session import Database
from charter.domain.access import Role
from charter.errors import CharterError
from charter.observability import logs
from charter.observability.metrics import MULTIPROC_ENV
from charter.services.keys import ensure_first_key, mint
from charter.settings import Settings

WORKERS_WITHOUT_REDIS = (
    "charter: refusing to start {workers} worker processes without CHARTER_REDIS_URL: each "
    "would keep its own cache and key checks and hear only its own changes, so the others "
    "would serve stale prompts and accept revoked keys. Set CHARTER_REDIS_URL (Redis then "
    "carries every change to every process), or use --workers 1."
)


def run(command: str, args: argparse.Namespace) -> int:
    """Run the server-side `command` ('serve', 'migrate', 'keys_create' or 'backup')."""
    try:
        settings = Settings.from_env()
    except ValueError as exc:  # a setting that cannot be used, e.g. CHARTER_REDIS_PREFIX
        print(f"charter: {exc}", file=sys.stderr)
        return 2
    return COMMANDS[command](args, settings)


def serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers > 1 and settings.redis_url is None:
        print(WORKERS_WITHOUT_REDIS.format(workers=args.workers), file=sys.stderr)
        return 2
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
    with contextlib.ExitStack() as held:
        try:
            # Held until the server stops: see db/serving_lock.py.
            held.enter_context(serving_lock(settings))
        except PreflightFailed as exc:
            print(f"charter: refusing to start: {exc}", file=sys.stderr)
            return 2
        _run_server(args, settings)
    return 0


def _run_server(args: argparse.Namespace, settings: Settings) -> None:
    secret = asyncio.run(_first_key(settings))
    if secret is not None:
        print(
            "charter: no API key existed, so an admin key was created. It is shown this once:\n"
            f"  {secret}\n"
            "Use it as `Authorization: Bearer <key>`; make others with POST /v1/keys.",
            file=sys.stderr,
        )

    json_logs = settings.log_format == "json"
    with metrics_directory(args.workers):
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
            # In JSON mode the app writes the access line (it has the request id).
            log_access=args.access_log and not json_logs,
            log_level=LogLevels.info,
            log_dictconfig=logs.dict_config(settings.log_format, access_log=args.access_log),
        ).serve()


@contextmanager
def metrics_directory(workers: int) -> Iterator[str | None]:
    """Several workers share their metrics through files (prometheus_client's multiprocess
    mode): a temporary directory unless PROMETHEUS_MULTIPROC_DIR names one, removed after."""
    given = os.environ.get(MULTIPROC_ENV)
    if workers <= 1 or given:
        yield given
        return
    made = tempfile.mkdtemp(prefix="charter-metrics-")
    os.environ[MULTIPROC_ENV] = made
    # The workers are forked from this process: values made from now on go to files.
    prometheus_values.ValueClass = prometheus_values.get_value_class()  # type: ignore[no-untyped-call]
    try:
        yield made
    finally:
        del os.environ[MULTIPROC_ENV]
        prometheus_values.ValueClass = prometheus_values.get_value_class()  # type: ignore[no-untyped-call]
        shutil.rmtree(made, ignore_errors=True)


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
    print(
        f"created {key.role} key {key.id} in {database_name(settings.database_url)}; "
        "the secret is shown this once:",
        file=sys.stderr,
    )
    return secret


def keys_create(args: argparse.Namespace, settings: Settings) -> int:
    """Mint a key in the database the settings name; never in a database made by mistake.

    Run outside the server's folder, the default `./charter.db` would be a new, empty database
    the server never reads, and the key printed would open nothing: so a missing SQLite file
    is refused unless `--create-database` asks for it.
    """
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists() and not getattr(args, "create_database", False):
        source = "CHARTER_DATABASE_URL" if "CHARTER_DATABASE_URL" in os.environ else "the default"
        print(
            f"charter: no database at {path} ({source}); run this where the server runs, or "
            "set CHARTER_DATABASE_URL to the server's database (--create-database makes a "
            "new one)",
            file=sys.stderr,
        )
        return exits.USAGE
    try:
        if settings.is_sqlite:
            upgrade(settings.migration_url)
        print(asyncio.run(_create_key(args, settings)))
    except CharterError as exc:
        print(f"charter: {exc.detail}", file=sys.stderr)
        return exits.USAGE
    except Exception as exc:
        return _database_failure("keys create", exc, settings.database_url)
    return exits.OK


def migrate(_: argparse.Namespace, settings: Settings) -> int:
    path = sqlite_path(settings.migration_url)
    if path is not None:
        # Opened here first: a file SQLite cannot open fails in this thread, before any
        # event loop, whose closing aiosqlite's worker thread could race (a traceback).
        try:
            sqlite3.connect(path).close()
        except sqlite3.Error as exc:
            print(f"charter: migrate: {path}: {exc}", file=sys.stderr)
            return exits.ERROR
    try:
        role = migrate_schema(settings.migration_url, settings.database_url)
    except Exception as exc:
        return _database_failure("migrate", exc, settings.migration_url)
    print("schema is at head" + (f"; app role {role!r} granted" if role else ""))
    return exits.OK


def database_name(url: str) -> str:
    """The database a URL names, for messages: a SQLite file's full path, else the URL
    without its password."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "the database"


def sqlite_path(url: str) -> Path | None:
    """The absolute path of the SQLite file `url` names; None for another database or memory."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser().resolve()


# SQLSTATE classes (PostgreSQL appendix A): 08 connection, 28 authorization, 3D no database.
_PERMISSION = ("28", "42501")


def _database_failure(command: str, exc: Exception, url: str) -> int:
    """One line for a database that refused or could not be reached; exit 6, 7 or 1.

    Anything that is no database failure is re-raised: a bug should still show its traceback.
    """
    cause: BaseException = exc
    if isinstance(exc, DBAPIError):
        cause = exc.orig.__cause__ or exc.orig if exc.orig is not None else exc
    sqlstate = getattr(cause, "sqlstate", None) or ""
    if not isinstance(exc, OSError | SQLAlchemyError) and not sqlstate:
        raise exc
    said = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    where = database_name(url)
    if isinstance(cause, OSError) or sqlstate.startswith("08"):
        print(f"charter: {command}: cannot reach {where}: {said}", file=sys.stderr)
        return exits.UNAVAILABLE
    if sqlstate.startswith(_PERMISSION):
        hint = ""
        if sqlstate == "42501" and "role" in said:
            hint = " (the schema owner needs CREATEROLE to create the app role)"
        print(f"charter: {command}: {where} refused: {said}{hint}", file=sys.stderr)
        return exits.AUTH
    print(f"charter: {command}: {where}: {said}", file=sys.stderr)
    return exits.ERROR


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
