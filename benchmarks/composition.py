"""Scenario 2: cold composition (no cache tier), in-process, against the bare query.

Charter: `Prompts.compute`, the cache-miss path (query, compose, encode), with no cache tier.
Baseline: the same recursive query through raw asyncpg, prepared, with the realm set once per
session, so one round trip and nothing else: the floor for a composition read.
Round trips are counted by a TCP proxy (`roundtrips.py`), statements by SQLAlchemy events.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import asyncpg
from sqlalchemy import make_url

from benchmarks.roundtrips import proxied, statement_log
from charter.cache.local import LocalTier
from charter.db.session import Database
from charter.services.prompts import Prompts

# The composition query of `store/compositions.py`, as plain SQL.
QUERY = """
WITH RECURSIVE chain(id, parent_id) AS (
    SELECT d.id, d.parent_id FROM directives d
    WHERE d.realm_id = $1 AND d.owner_agent_id = $2
    UNION
    SELECT d.id, d.parent_id FROM directives d JOIN chain c ON d.id = c.parent_id
    WHERE d.realm_id = $1
)
SELECT d.id, d.parent_id, d.level, d.status, d.priority, d.owner_agent_id, d.injection_mode,
       d.created_at, d.revision, d.active_version, v.title, v.body,
       (SELECT r.revision FROM realms r WHERE r.id = $1) AS realm_revision
FROM directives d
LEFT JOIN directive_versions v
  ON v.realm_id = d.realm_id AND v.directive_id = d.id AND v.version = d.active_version
WHERE d.realm_id = $1 AND d.id IN (SELECT chain.id FROM chain)
"""


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": _pct(samples, 0.99),
        "mean_ms": statistics.fmean(samples),
        "n": len(samples),
    }


async def _asyncpg(url: str, port: int | None = None) -> asyncpg.Connection:
    u = make_url(url)
    return await asyncpg.connect(
        user=u.username,
        password=u.password,
        host=u.host,
        port=port or u.port or 5432,
        database=u.database,
    )


async def run(app_url: str, realm: str, agent: str, *, rounds: int, iterations: int) -> Any:
    db = Database.connect(app_url, pool_size=2)
    prompts = Prompts(db, LocalTier(), None)
    floor = await _asyncpg(app_url)
    try:
        await floor.execute("SELECT set_config('charter.realm', $1, false)", realm)
        statement = await floor.prepare(QUERY)
        layers = len(await statement.fetch(realm, agent))
        entry = await prompts.compute(realm, agent)
        for _ in range(20):
            await prompts.compute(realm, agent)
            await statement.fetch(realm, agent)

        async def charter() -> list[float]:
            out = []
            for _ in range(iterations):
                start = time.perf_counter()
                await prompts.compute(realm, agent)
                out.append((time.perf_counter() - start) * 1000)
            return out

        async def bare() -> list[float]:
            out = []
            for _ in range(iterations):
                start = time.perf_counter()
                await statement.fetch(realm, agent)
                out.append((time.perf_counter() - start) * 1000)
            return out

        runs: dict[str, list[dict[str, float]]] = {"charter": [], "bare": []}
        for i in range(rounds):
            order = (("charter", charter), ("bare", bare))
            for name, measure in order if i % 2 == 0 else order[::-1]:
                result = _summary(await measure())
                runs[name].append(result)
                print(
                    f"  composition round {i + 1} {name:<8} p50 {result['p50_ms']:6.2f} ms  "
                    f"p99 {result['p99_ms']:6.2f} ms",
                    flush=True,
                )
    finally:
        await floor.close()
        await db.dispose()
    trips = await _round_trips(app_url, realm, agent)
    return {
        "layers": layers,
        "payload_bytes": len(entry.payload),
        "runs": runs,
        **trips,
    }


async def _round_trips(app_url: str, realm: str, agent: str, calls: int = 20) -> dict[str, Any]:
    u = make_url(app_url)
    async with proxied(u.host or "127.0.0.1", u.port or 5432) as proxy:
        db = Database.connect(u.set(port=proxy.port).render_as_string(False), pool_size=1)
        prompts = Prompts(db, LocalTier(), None)
        floor = await _asyncpg(app_url, proxy.port)
        try:
            await floor.execute("SELECT set_config('charter.realm', $1, false)", realm)
            statement = await floor.prepare(QUERY)
            for _ in range(5):  # a warm pool connection and warm prepared statements
                await prompts.compute(realm, agent)
                await statement.fetch(realm, agent)
            proxy.turns = 0
            with statement_log(db.engine) as log:
                for _ in range(calls):
                    await prompts.compute(realm, agent)
            charter_trips = proxy.turns / calls
            proxy.turns = 0
            for _ in range(calls):
                await statement.fetch(realm, agent)
            bare_trips = proxy.turns / calls
        finally:
            await floor.close()
            await db.dispose()
    per_call = len(log) // calls
    return {
        "round_trips": charter_trips,
        "bare_round_trips": bare_trips,
        "statements": [s[:120] for s in log[:per_call]],
    }
