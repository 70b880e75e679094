"""The server side of the `charter` command: serve, migrate, keys create.

`charter.__main__` imports this module only when one of these commands runs, so the
client-side commands work where only the client is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from granian.constants import Interfaces, Loops
from granian.log import LogLevels
from granian.server import Server
from prometheus_client import values as prometheus_values

from charter.db.migrate import migrate as migrate_schema
from charter.db.migrate import upgrade
from charter.db.preflight import PreflightFailed, check_postgres
from charter.db.session import Database
from charter.domain.access import Role
from charter.errors import CharterError
from charter.observability import logs
from charter.observability.metrics import MULTIPROC_ENV
from charter.services.keys import ensure_first_key, mint
from charter.settings import Settings


def run(command: str, args: argparse.Namespace) -> int:
    """Run the server-side `command` ('serve', 'migrate' or 'keys_create')."""
    return COMMANDS[command](args, Settings.from_env())


def serve(args: argparse.Namespace, settings: Settings) -> int:
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
            # In JSON mode the app writes the access line (it has the request id).
            log_access=args.access_log and not json_logs,
            log_level=LogLevels.info,
            log_dictconfig=logs.dict_config(settings.log_format, access_log=args.access_log),
        ).serve()
    return 0


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


COMMANDS = {"serve": serve, "migrate": migrate, "keys_create": keys_create}
