"""Scenario 3: CAS updates through Charter's HTTP API against the same SQL in raw asyncpg.

Each writer loops until the deadline: it picks a directive (always the first, or one of all),
sends a new body with the revision it last heard of, and learns the current revision from
the answer (the ETag of a 200 or of a 412). Writers share what they learn, as clients of one
service would.

The baseline (`bare`) issues the transaction that `services/writes.py` issues for a body
change on PostgreSQL, minus what is Charter's own (HTTP, the cache invalidation after
commit): set the realm, read the directive with its text, and call `charter_swap_content`
(migration 0006: lock, check, update, version, realm revision, event in one call).

A second baseline (`statements`) is the same change issued statement by statement in plain
asyncpg, in the order Charter's function takes its locks since migration 0010 (ADR 0006):
share the realm row (`FOR KEY SHARE`), read the directive, UPDATE … WHERE revision (the
node's own row lock), INSERT the version, and only then raise the realm revision (the feed's
sequencer, held to commit) and INSERT the event.

Two more transactions measure the feed designs ADR 0006 chose between, with 1000 directives
only: `lock_first` is round 1's order (the realm row locked first and held to commit, so a
realm's writes run one at a time); `xid8` takes the event's position from a sequence and
stores the writing transaction's id, for readers that stop at the visibility horizon
(`pg_snapshot_xmin(pg_current_snapshot())`): no realm-wide lock at all.

Both read the directive's live text with the `CASE` form Charter's own read uses
(`store/directives.py`): under row-level security PostgreSQL will not use `coalesce(…)` in an
index condition, so a baseline joining on it scanned every version of the directive and fell
behind as versions piled up, which flattered Charter's ratio.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import make_url

from benchmarks.load import Http1
from benchmarks.roundtrips import proxied, statement_log
from charter.db.session import Database
from charter.domain.versions import content_hash
from charter.services import writes

SET_REALM = "SELECT set_config('charter.realm', $1, true)"
LOCK = "SELECT revision FROM realms WHERE id = $1 FOR UPDATE"
SHARE = "SELECT 1 FROM realms WHERE id = $1 FOR KEY SHARE"
READ = """
SELECT d.revision, d.active_version, d.latest_version, v.title, v.body
FROM directives d JOIN directive_versions v
  ON v.realm_id = d.realm_id AND v.directive_id = d.id
 AND v.version = CASE WHEN d.active_version IS NULL THEN d.latest_version
                      ELSE d.active_version END
WHERE d.realm_id = $1 AND d.id = $2
"""
SUBTREE = """
WITH RECURSIVE below(id, owner_agent_id, depth) AS (
    SELECT id, owner_agent_id, 0 FROM directives WHERE realm_id = $1 AND id = $2
    UNION ALL
    SELECT d.id, d.owner_agent_id, b.depth + 1 FROM directives d
    JOIN below b ON d.realm_id = $1 AND d.parent_id = b.id WHERE b.depth < 256
)
SELECT id, owner_agent_id FROM below
"""
CAS = """
UPDATE directives SET latest_version = $4, active_version = $4, updated_at = $5,
       revision = revision + 1
WHERE realm_id = $1 AND id = $2 AND revision = $3
RETURNING revision
"""
INSERT_VERSION = """
INSERT INTO directive_versions (realm_id, directive_id, version, title, body, content_hash,
                                author, message, based_on, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9)
"""
ADVANCE = "UPDATE realms SET revision = revision + 1 WHERE id = $1 RETURNING revision"
INSERT_EVENT = """
INSERT INTO events (realm_id, seq, type, directive_id, revision, version, actor, message,
                    occurred_at, affected_agents, payload)
VALUES ($1, $2, 'directive.version_created', $3, $4, $5, $6, NULL, $7, $8::jsonb, $9::jsonb)
"""

NEXT_POSITION = "SELECT nextval('bench_event_position')"
INSERT_EVENT_XID = """
INSERT INTO events (realm_id, seq, type, directive_id, revision, version, actor, message,
                    occurred_at, affected_agents, payload)
VALUES ($1, $2, 'directive.version_created', $3, $4, $5, $6, NULL, $7, $8::jsonb,
        jsonb_build_object('version', $5::int, 'xid', pg_current_xact_id()::text))
"""
# The position sequence of the `xid8` design: created by the schema's owner, for the bench.
MAKE_SEQUENCE = """
CREATE SEQUENCE IF NOT EXISTS bench_event_position START 1000000000;
GRANT USAGE ON SEQUENCE bench_event_position TO charter_app
"""

SWAP = """
SELECT s.outcome, (s.directive).revision FROM charter_swap_content($1, $2, $3, $4, $5, $6,
    'bench', NULL, 'directive.version_created', 256) AS s
"""

_bodies = itertools.count()
Attempt = Callable[[str, int, str], Awaitable[tuple[bool, int]]]
Writer = tuple[Attempt, Callable[[], Awaitable[None]]]  # an attempt and how to close it
# A peer store run beside the baselines (benchmarks/etcd.py): its writers, and how to read
# the revisions its writers start from.
Peer = tuple[Callable[[], Writer], Callable[[list[str]], dict[str, int]]]


async def revisions(pool: asyncpg.Pool, realm: str, ids: list[str]) -> dict[str, int]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(SET_REALM, realm)
        rows = await conn.fetch(
            "SELECT id, revision FROM directives WHERE realm_id = $1 AND id = ANY($2)", realm, ids
        )
    return {row["id"]: row["revision"] for row in rows}


def swap_attempt(pool: asyncpg.Pool, realm: str) -> Attempt:
    async def attempt(directive_id: str, expected: int, body: str) -> tuple[bool, int]:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(SET_REALM, realm)
            row = await conn.fetchrow(READ, realm, directive_id)
            if row["revision"] != expected:
                return False, row["revision"]
            title = row["title"]
            hashed = content_hash(title, body)
            swapped = await conn.fetchrow(SWAP, realm, directive_id, expected, title, body, hashed)
            return swapped["outcome"] == "ok", swapped["revision"]

    return attempt


def raw_attempt(pool: asyncpg.Pool, realm: str, design: str = "tail") -> Attempt:
    """The change statement by statement; `design` says where the feed's order is decided:
    `tail` (the realm revision raised last, as Charter does), `lock_first` (the realm row
    locked first, round 1) or `xid8` (a sequence, no realm-wide lock)."""

    async def attempt(directive_id: str, expected: int, body: str) -> tuple[bool, int]:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(SET_REALM, realm)
            if design == "lock_first":
                await conn.fetchval(LOCK, realm)
            elif design == "tail":
                await conn.execute(SHARE, realm)
            row = await conn.fetchrow(READ, realm, directive_id)
            if row["revision"] != expected:
                return False, row["revision"]
            owners = sorted(
                {r["owner_agent_id"] for r in await conn.fetch(SUBTREE, realm, directive_id)}
                - {None}
            )
            number = row["latest_version"] + 1
            now = datetime.now(UTC)
            revision = await conn.fetchval(CAS, realm, directive_id, expected, number, now)
            if revision is None:  # a writer of the same directive got there first
                current = await conn.fetchval(
                    "SELECT revision FROM directives WHERE realm_id = $1 AND id = $2",
                    realm,
                    directive_id,
                )
                return False, current
            title = row["title"]
            await conn.execute(
                INSERT_VERSION,
                realm,
                directive_id,
                number,
                title,
                body,
                content_hash(title, body),
                "bench",
                row["active_version"],
                now,
            )
            if design == "xid8":
                seq = await conn.fetchval(NEXT_POSITION)
                await conn.execute(
                    INSERT_EVENT_XID,
                    realm,
                    seq,
                    directive_id,
                    revision,
                    number,
                    "bench",
                    now,
                    json.dumps(owners),
                )
                return True, revision
            seq = await conn.fetchval(ADVANCE, realm)
            await conn.execute(
                INSERT_EVENT,
                realm,
                seq,
                directive_id,
                revision,
                number,
                "bench",
                now,
                json.dumps(owners),
                json.dumps({"version": number, "based_on": row["active_version"]}),
            )
            return True, revision

    return attempt


def http_attempt(port: int, realm: str, key: str) -> Callable[[], Writer]:
    """One connection per writer: a factory of attempts."""

    def make() -> Writer:
        client = Http1("127.0.0.1", port)

        async def attempt(directive_id: str, expected: int, body: str) -> tuple[bool, int]:
            status, headers, answer = await client.request(
                "PATCH",
                f"/v1/realms/{realm}/directives/{directive_id}",
                {
                    "Authorization": f"Bearer {key}",
                    "Content-Type": "application/json",
                    "If-Match": f'"{expected}"',
                },
                json.dumps({"body": body}).encode(),
            )
            if status not in (200, 412):
                raise RuntimeError(f"PATCH answered {status}: {answer[:300]!r}")
            return status == 200, int(headers["etag"].strip('"'))

        return attempt, client.close

    return make


async def nothing() -> None:
    return None


async def load(
    make: Callable[[], Writer],
    ids: list[str],
    known: dict[str, int],
    writers: int,
    seconds: float,
) -> dict[str, float]:
    wins: list[float] = []
    losses: list[float] = []
    deadline = time.perf_counter() + seconds

    async def writer() -> None:
        attempt, close = make()
        try:
            while time.perf_counter() < deadline:
                directive_id = ids[0] if len(ids) == 1 else random.choice(ids)
                body = f"b{next(_bodies)}"
                start = time.perf_counter()
                won, revision = await attempt(directive_id, known[directive_id], body)
                (wins if won else losses).append((time.perf_counter() - start) * 1000)
                known[directive_id] = max(known[directive_id], revision)
        finally:
            await close()

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    every = sorted(wins + losses)
    return {
        "cas_per_s": len(wins) / elapsed,
        "attempts_per_s": len(every) / elapsed,
        "conflicts": len(losses),
        "p50_ms": statistics.median(every) if every else 0.0,
        "p99_ms": every[min(len(every) - 1, int(len(every) * 0.99))] if every else 0.0,
        "win_p99_ms": sorted(wins)[int(len(wins) * 0.99)] if wins else 0.0,
    }


async def run(
    app_dsn: str,
    port: int,
    realm: str,
    key: str,
    cas_ids: list[str],
    *,
    rounds: int,
    seconds: float,
    owner_dsn: str | None = None,
    profiler: Callable[[float], Any] | None = None,
    two_workers_port: int | None = None,
    peers: dict[str, Peer] | None = None,
) -> dict[str, Any]:
    """`profiler(seconds)` starts a profile of Charter's worker (py-spy), run during its first
    round of 32 writers over every directive; it returns the process, or None.
    `two_workers_port`: a second Charter server, with two workers, as one more series.
    `peers`: other stores driven by the same writers (etcd), alternating with Charter."""
    peers = peers or {}
    if owner_dsn is not None:
        owner = await asyncpg.connect(owner_dsn)
        try:
            await owner.execute(MAKE_SEQUENCE)
        finally:
            await owner.close()
    # The pool Charter runs with by default: 10 connections plus 10 overflow.
    pool = await asyncpg.create_pool(app_dsn, min_size=10, max_size=20)
    results: dict[str, Any] = {}
    try:
        for writers, spread in ((8, 1), (32, 1), (8, len(cas_ids)), (32, len(cas_ids))):
            ids = cas_ids[:spread]
            sides: dict[str, Callable[[], Writer]] = {
                "charter": http_attempt(port, realm, key),
                "bare": lambda: (swap_attempt(pool, realm), nothing),
                **(
                    {"charter_2w": http_attempt(two_workers_port, realm, key)}
                    if two_workers_port is not None
                    else {}
                ),
                "statements": lambda: (raw_attempt(pool, realm), nothing),
            }
            if spread > 1:  # the feed designs of ADR 0006, where writes could run in parallel
                sides["lock_first"] = lambda: (raw_attempt(pool, realm, "lock_first"), nothing)
                if owner_dsn is not None:
                    sides["xid8"] = lambda: (raw_attempt(pool, realm, "xid8"), nothing)
            sides.update({name: make for name, (make, _) in peers.items()})
            runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
            for i in range(rounds):
                order = tuple(sides)
                order = order if i % 2 == 0 else order[::-1]
                for side in order:
                    if side in peers:
                        known = await asyncio.to_thread(peers[side][1], ids)
                    else:
                        known = await revisions(pool, realm, ids)
                    profiling = None
                    first = side == "charter" and i == 0 and writers == 32 and spread > 1
                    if profiler is not None and first:
                        profiling = profiler(seconds)
                    result = await load(sides[side], ids, known, writers, seconds)
                    if profiling is not None:
                        await asyncio.to_thread(profiling.wait)
                    result["load"] = os.getloadavg()[0]  # the 1-min average, as the run ends
                    runs[side].append(result)
                    print(
                        f"  cas {writers:>2} writers x {spread:>4} directives round {i + 1} "
                        f"{side:<10} {result['cas_per_s']:7.0f} CAS/s "
                        f"({result['attempts_per_s']:6.0f} tries/s)  "
                        f"p99 {result['p99_ms']:6.1f} ms",
                        flush=True,
                    )
                    await asyncio.sleep(0.3)  # let the relay settle between runs
            results[f"cas_{writers}w_{spread}d"] = {
                "writers": writers,
                "directives": spread,
                **runs,
            }
    finally:
        await pool.close()
    return results


async def round_trips(app_url: str, realm: str, directive_id: str, calls: int = 10) -> Any:
    """Round trips of one successful body change, counted by a proxy: the transaction a PATCH
    runs in Charter (without HTTP and the cache invalidation after commit) and the baseline's."""
    u = make_url(app_url)
    async with proxied(u.host or "127.0.0.1", u.port or 5432) as proxy:
        db = Database.connect(u.set(port=proxy.port).render_as_string(False), pool_size=1)
        dsn = u.set(drivername="postgresql", port=proxy.port).render_as_string(False)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        attempt = swap_attempt(pool, realm)

        async def charter(known: int) -> None:
            async with db.transaction(realm) as conn:
                await writes.update(
                    conn,
                    realm,
                    writes.Actor("bench"),
                    directive_id,
                    writes.Expected(known, via_header=True),
                    writes.Patch(body=f"b{next(_bodies)}"),
                    16,
                )

        async def bare(known: int) -> None:
            won, _ = await attempt(directive_id, known, f"b{next(_bodies)}")
            assert won

        counts: dict[str, float] = {}
        try:
            for name, write in (("charter", charter), ("bare", bare)):
                total = 0
                for i in range(3 + calls):  # 3 to warm connections and prepared statements
                    known = (await revisions(pool, realm, [directive_id]))[directive_id]
                    before = proxy.turns
                    await write(known)
                    total += (proxy.turns - before) if i >= 3 else 0
                counts[name] = total / calls
            with statement_log(db.engine) as log:
                await charter((await revisions(pool, realm, [directive_id]))[directive_id])
        finally:
            await pool.close()
            await db.dispose()
    return {
        "round_trips": counts["charter"],
        "bare_round_trips": counts["bare"],
        "statements": [st[:120] for st in log],
    }
