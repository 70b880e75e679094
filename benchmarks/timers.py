"""Scenario 10, `timers`: how late lease expiries and schedules happen (ADR 0008).

Charter runs as one `charter serve` process on PostgreSQL with Redis. Each round makes
`count` schedules due a few seconds out (an `activate` of the active version: a no-op write
that still runs, once) and `count` claims with the shortest lease (5 s), and reads back, from
the API, when each ran (`ran_at` - `at`) and when each lease was released (`finished_at` -
`expires_at`). The baseline, alternating with it in the same run, is the bare minimum for the
same job: a task in this process that sleeps until each due time and then makes one round trip
to PostgreSQL (raw asyncpg). The ratio is Charter's lateness over that floor.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from benchmarks.servers import Server

LEASE_SECONDS = 5
LEAD_SECONDS = 2.0
SPREAD_SECONDS = 1.0


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": statistics.median(ordered), "p99_ms": p99, "n": len(ordered)}


def _ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000


async def _charter_round(http: httpx.AsyncClient, realm: str, nodes: list[str]) -> dict[str, Any]:
    base = f"/v1/realms/{realm}/directives"
    start = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
    due: dict[str, datetime] = {}
    for i, node in enumerate(nodes):
        at = start + timedelta(seconds=SPREAD_SECONDS * i / len(nodes))
        body = {"at": at.isoformat(), "action": {"activate": 1}}
        made = (await http.post(f"{base}/{node}/schedules", json=body)).json()
        due[made["id"]] = at
    claims = []
    for node in nodes:
        body = {"agent_id": "bench", "lease_seconds": LEASE_SECONDS}
        claims.append((await http.post(f"{base}/{node}/claims", json=body)).json()["id"])
    await asyncio.sleep(LEASE_SECONDS + SPREAD_SECONDS + 1.5)
    schedule_late = []
    for node in nodes:
        for s in (await http.get(f"{base}/{node}/schedules", params={"limit": 500})).json()[
            "items"
        ]:
            if s["id"] in due:
                assert s["state"] == "done", s
                schedule_late.append(_ms(datetime.fromisoformat(s["ran_at"]) - due[s["id"]]))
    expired = (
        await http.get(f"/v1/realms/{realm}/claims", params={"state": "expired", "limit": 500})
    ).json()["items"]
    lease_late = [
        _ms(datetime.fromisoformat(c["finished_at"]) - datetime.fromisoformat(c["expires_at"]))
        for c in expired
        if c["id"] in claims
    ]
    assert len(lease_late) == len(nodes), f"{len(lease_late)} of {len(nodes)} leases released"
    return {"schedules": schedule_late, "leases": lease_late}


async def _baseline_round(dsn: str, count: int) -> list[float]:
    """Sleep until each due time, then one round trip to PostgreSQL: the floor."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        start = time.time() + LEAD_SECONDS
        dues = [start + SPREAD_SECONDS * i / count for i in range(count)]

        async def one(due: float) -> float:
            await asyncio.sleep(max(0.0, due - time.time()))
            await pool.fetchval("SELECT now()")
            return (time.time() - due) * 1000

        return list(await asyncio.gather(*(one(due) for due in dues)))
    finally:
        await pool.close()


async def run(cfg: dict[str, Any], work: Path, admin_key: str) -> dict[str, Any]:
    count, rounds = cfg["timer_count"], cfg["timer_rounds"]
    charter = Server(
        "charter-timers",
        "charter.app:app_from_env",
        {
            "CHARTER_DATABASE_URL": cfg["app_url"],
            "CHARTER_REDIS_URL": cfg["redis_url"],
            "CHARTER_BOOTSTRAP_KEY": admin_key,
            "CHARTER_RATE_LIMIT": "0",
        },
        work / "charter-timers.log",
    )
    runs: dict[str, list[float]] = {"schedules": [], "leases": [], "baseline": []}
    try:
        charter.wait_ready()
        headers = {"Authorization": f"Bearer {admin_key}"}
        async with httpx.AsyncClient(base_url=charter.base, headers=headers, timeout=30) as http:
            realm = "bench-timers-" + secrets.token_hex(4)
            (await http.post("/v1/realms", json={"id": realm})).raise_for_status()
            nodes = []
            for _ in range(count):
                body = {"level": "realm", "title": "Timer", "body": "Timer"}
                made = await http.post(f"/v1/realms/{realm}/directives", json=body)
                nodes.append(made.json()["id"])
            for _ in range(rounds):
                runs["baseline"] += await _baseline_round(cfg["app_dsn"], count)
                measured = await _charter_round(http, realm, nodes)
                runs["schedules"] += measured["schedules"]
                runs["leases"] += measured["leases"]
    finally:
        charter.stop()
    return {name: _percentiles(values) for name, values in runs.items()} | {"count": count}
