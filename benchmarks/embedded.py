"""Scenario 7: the embedded mode, `charter serve` as a fresh machine runs it.

`charter serve` in an empty folder: the default SQLite URL (`./charter.db`, migrated by
`serve` itself), no Redis (the in-process cache and notifier), its own granian options. The
realm is the one scenarios 1-3 use (`seed.py`), written into the same file in-process.

- Cached prompt read (scenario 1): against the bare Litestar route serving the same bytes
  under the same granian options (`bare.py`), wrk at the same connections.
- CAS, 8 writers on 1 directive (scenario 3): the same load generator against the same
  transaction in raw aiosqlite, on one connection as Charter's embedded mode has, so the
  writers queue on it in turn: `BEGIN IMMEDIATE`, read the realm's revision, read the
  directive with its text, read its subtree, `UPDATE … WHERE revision`, insert the version,
  raise the realm revision, insert the event, `COMMIT`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from benchmarks import cas, reads
from benchmarks.seed import COMPOSER, seed
from benchmarks.servers import Server
from charter.domain.versions import Content

_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime in SQLite


def _qmarks(sql: str) -> str:
    """cas.py's PostgreSQL statements with SQLite's placeholders (`$3` → `?3`)."""
    return sql.replace("$", "?")


READ = _qmarks(cas.READ)
SUBTREE = _qmarks(cas.SUBTREE)
CAS = _qmarks(cas.CAS)
INSERT_VERSION = _qmarks(cas.INSERT_VERSION)
INSERT_EVENT = _qmarks(cas.INSERT_EVENT).replace("::jsonb", "")
LOCK = "SELECT revision FROM realms WHERE id = ?1"
ADVANCE = "UPDATE realms SET revision = revision + 1 WHERE id = ?1 RETURNING revision"


def sqlite_attempt(conn: aiosqlite.Connection, turn: asyncio.Lock, realm: str) -> cas.Attempt:
    async def attempt(directive_id: str, expected: int, body: str) -> tuple[bool, int]:
        async with turn:  # one connection: transactions take turns, as in Charter's pool of 1
            await conn.execute("BEGIN IMMEDIATE")
            try:
                won, revision = await _transaction(conn, realm, directive_id, expected, body)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT" if won else "ROLLBACK")
            return won, revision

    return attempt


async def _fetchone(conn: aiosqlite.Connection, sql: str, *args: Any) -> Any:
    async with conn.execute(sql, args) as cursor:
        return await cursor.fetchone()


async def _transaction(
    conn: aiosqlite.Connection, realm: str, directive_id: str, expected: int, body: str
) -> tuple[bool, int]:
    await _fetchone(conn, LOCK, realm)
    revision, active, latest, title, _ = await _fetchone(conn, READ, realm, directive_id)
    if revision != expected:
        return False, revision
    async with conn.execute(SUBTREE, (realm, directive_id)) as cursor:
        owners = sorted({row[1] for row in await cursor.fetchall()} - {None})
    number = latest + 1
    now = datetime.now(UTC).strftime(_TIME)
    (revision,) = await _fetchone(conn, CAS, realm, directive_id, expected, number, now)
    hashed = Content(title, body).hash
    await conn.execute(
        INSERT_VERSION, (realm, directive_id, number, title, body, hashed, "bench", active, now)
    )
    (seq,) = await _fetchone(conn, ADVANCE, realm)
    await conn.execute(
        INSERT_EVENT,
        (
            realm,
            seq,
            directive_id,
            revision,
            number,
            "bench",
            now,
            json.dumps(owners),
            json.dumps({"version": number, "based_on": active}),
        ),
    )
    return True, revision


async def _revisions(conn: aiosqlite.Connection, realm: str, ids: list[str]) -> dict[str, int]:
    marks = ",".join("?" * len(ids))
    query = f"SELECT id, revision FROM directives WHERE realm_id = ? AND id IN ({marks})"  # noqa: S608
    async with conn.execute(query, (realm, *ids)) as cursor:
        return {row[0]: row[1] for row in await cursor.fetchall()}


async def _cas(
    port: int, db_file: Path, realm: str, key: str, target: str, *, rounds: int, seconds: float
) -> dict[str, Any]:
    conn = await aiosqlite.connect(db_file, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA foreign_keys = ON")
        turn = asyncio.Lock()
        sides: dict[str, Any] = {
            "charter": cas.http_attempt(port, realm, key),
            "bare": lambda: (sqlite_attempt(conn, turn, realm), cas.nothing),
        }
        runs: dict[str, list[dict[str, float]]] = {"charter": [], "bare": []}
        for i in range(rounds):
            order = ("charter", "bare") if i % 2 == 0 else ("bare", "charter")
            for side in order:
                known = await _revisions(conn, realm, [target])
                result = await cas.load(sides[side], [target], known, 8, seconds)
                runs[side].append(result)
                print(
                    f"  sqlite cas 8 writers x 1 directive round {i + 1} {side:<8} "
                    f"{result['cas_per_s']:7.0f} CAS/s ({result['attempts_per_s']:6.0f} tries/s)"
                    f"  p99 {result['p99_ms']:6.1f} ms",
                    flush=True,
                )
    finally:
        await conn.close()
    return {"writers": 8, "directives": 1, **runs}


async def run(
    cfg: dict[str, Any], work: Path, admin_key: str, *, rounds: int, seconds: float
) -> dict[str, Any]:
    folder = work / "embedded"
    folder.mkdir()
    db_file = folder / "charter.db"
    servers: list[Server] = []
    try:
        # Nothing but a key: the default database URL, no Redis, `serve`'s own options.
        charter = Server(
            "charter",
            "",
            {
                "CHARTER_DATABASE_URL": None,
                "CHARTER_ADMIN_DATABASE_URL": None,
                "CHARTER_REDIS_URL": None,
                "CHARTER_BOOTSTRAP_KEY": admin_key,
            },
            work / "charter-embedded.log",
            command=["charter", "serve"],
            cwd=folder,
        )
        servers.append(charter)
        charter.wait_ready(60)
        realm_id = "bench-embedded"
        realm = await seed(f"sqlite+aiosqlite:///{db_file}", realm_id, cfg["sqlite_cas_directives"])
        path = reads.prompt_path(realm_id, COMPOSER)
        headers = {"Authorization": f"Bearer {realm.composer_key}"}
        status, payload, etag = await asyncio.to_thread(reads.fetch, charter.base + path, headers)
        if status != 200:
            raise RuntimeError(f"the embedded prompt answered {status}: {payload[:300]!r}")
        (work / "embedded-payload").write_bytes(payload)
        (work / "embedded-etag").write_text(etag)
        bare = Server(
            "bare",
            "benchmarks.bare:create_app",
            {
                "BENCH_BARE_PAYLOAD": str(work / "embedded-payload"),
                "BENCH_BARE_ETAG": str(work / "embedded-etag"),
            },
            work / "bare-embedded.log",
        )
        servers.append(bare)
        bare.wait_ready()
        print(f"  cached prompt read ({len(payload)} bytes), wrk", flush=True)
        results: dict[str, Any] = await asyncio.to_thread(
            reads.run,
            charter,
            bare,
            path,
            realm.composer_key,
            etag,
            rounds=rounds,
            seconds=cfg["seconds"],
            connections=cfg["connections"],
            variants=("prompt_200",),
        )
        print("  CAS, 8 writers on 1 directive, against raw aiosqlite", flush=True)
        results["cas"] = await _cas(
            charter.port,
            db_file,
            realm_id,
            admin_key,
            realm.cas_ids[0],
            rounds=rounds,
            seconds=seconds,
        )
        results["nodes"] = realm.nodes
        results["payload_bytes"] = len(payload)
    finally:
        for server in servers:
            server.stop()
    return results
