"""Due work through kill -9: leases and schedules still end exactly once (ADR 0008).

Two servers on one PostgreSQL and one Redis of the run's own. One is killed while leases are
live and expiring and schedules fall due; the other does all of it, once each, on time. Then
a server is killed while its due-work transaction is open on a due schedule (the test holds the
realm lock, so the transaction is stuck mid-way): the schedule still runs exactly once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from charter.db.session import Database
from tests.faults.rig import Fleet
from tests.support.api import new_realm_id
from tests.support.postgres import OwnPostgres
from tests.support.redis import OwnRedis

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

LEASES = 12
SCHEDULES = 12
LATE = timedelta(seconds=1.5)  # the 1 s bound, plus a loaded machine's slack


@pytest.fixture
async def fleet(cluster: OwnPostgres, tmp_path: Path) -> AsyncIterator[tuple[Fleet, str]]:
    if not await cluster.running():
        await cluster.start()
    (tmp_path / "redis").mkdir()
    (tmp_path / "logs").mkdir()
    redis = OwnRedis(tmp_path / "redis")
    fleet = Fleet(tmp_path / "logs", secrets.token_urlsafe(24), cluster.app_url)
    try:
        await redis.start()
        await asyncio.gather(fleet.start("a", redis.url), fleet.start("b", redis.url))
        yield fleet, redis.url
    finally:
        fleet.stop_all()
        redis.stop()


async def _setup(http: httpx.AsyncClient) -> tuple[str, str]:
    realm = new_realm_id()
    assert (await http.post("/v1/realms", json={"id": realm})).status_code == 201
    return realm, f"/v1/realms/{realm}/directives"


async def _node(http: httpx.AsyncClient, base: str) -> dict[str, Any]:
    made = await http.post(base, json={"level": "realm", "title": "T", "body": "B"})
    assert made.status_code == 201, made.text
    node: dict[str, Any] = made.json()
    return node


async def _events(http: httpx.AsyncClient, realm: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = (await http.get(f"/v1/realms/{realm}/events", params={"after": after})).json()
        out += page["items"]
        if page["next_cursor"] is None:
            return out
        after = page["next_cursor"]


async def test_a_server_killed_while_leases_expire_and_schedules_fall_due(
    fleet: tuple[Fleet, str],
) -> None:
    servers, _ = fleet
    async with servers.servers["a"].http() as a, servers.servers["b"].http() as b:
        realm, base = await _setup(a)
        nodes = [await _node(a, base) for _ in range(LEASES + SCHEDULES)]
        leases: dict[str, datetime] = {}
        for node in nodes[:LEASES]:
            made = await a.post(
                f"{base}/{node['id']}/claims", json={"agent_id": "w", "lease_seconds": 5}
            )
            assert made.status_code == 201, made.text
            leases[made.json()["id"]] = datetime.fromisoformat(made.json()["expires_at"])
        start = datetime.now(UTC)
        due: dict[str, datetime] = {}
        for i, node in enumerate(nodes[LEASES:]):
            at = start + timedelta(seconds=4 + i * 0.25)
            body = {"at": at.isoformat(), "action": {"status": "paused"}}
            made = await a.post(f"{base}/{node['id']}/schedules", json=body)
            assert made.status_code == 201, made.text
            due[made.json()["id"]] = at
        # Kill a mid-way through the window in which it all falls due.
        await asyncio.sleep(
            max(0.0, (start + timedelta(seconds=5.5) - datetime.now(UTC)).total_seconds())
        )
        await servers.kill("a")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            feed = await _events(b, realm)
            expired = [e for e in feed if e["type"] == "directive.claim_expired"]
            paused = [e for e in feed if e["actor"].startswith("schedule:")]
            if len(expired) >= LEASES and len(paused) >= SCHEDULES:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything twice would show by now
        feed = await _events(b, realm)
    expired = [e for e in feed if e["type"] == "directive.claim_expired"]
    assert sorted(e["payload"]["claim_id"] for e in expired) == sorted(leases)
    for event in expired:
        late = datetime.fromisoformat(event["occurred_at"]) - leases[event["payload"]["claim_id"]]
        assert timedelta(0) <= late < LATE, event
    ran = [e for e in feed if e["actor"].startswith("schedule:")]
    assert sorted(e["actor"].removeprefix("schedule:") for e in ran) == sorted(due)
    for event in ran:
        late = datetime.fromisoformat(event["occurred_at"]) - due[event["actor"][9:]]
        assert timedelta(0) <= late < LATE, event


async def test_a_server_killed_holding_a_due_schedule_leaves_it_to_run_once(
    fleet: tuple[Fleet, str], cluster: OwnPostgres
) -> None:
    servers, _ = fleet
    servers.servers["b"].stop()  # a alone takes the due schedule
    async with servers.servers["a"].http() as a:
        realm, base = await _setup(a)
        node = await _node(a, base)
        at = datetime.now(UTC) + timedelta(seconds=1.5)
        body = {"at": at.isoformat(), "action": {"status": "paused"}}
        made = await a.post(f"{base}/{node['id']}/schedules", json=body)
        sid = made.json()["id"]
        owner = Database.connect(cluster.owner_url, pool_size=1)
        try:
            async with owner.transaction(realm) as conn:
                # The realm lock, held: a's due-work transaction opens at `at` and waits here.
                await conn.execute(
                    text("SELECT 1 FROM realms WHERE id = :id FOR UPDATE"), {"id": realm}
                )
                await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 1.0)
                # Waiting for this transaction's row lock: a lock not granted (pg_locks shows
                # every role's locks).
                waiting = await conn.execute(
                    text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                )
                assert waiting.scalar_one() >= 1  # a is holding the due schedule, stuck
                await servers.kill("a")
        finally:
            await owner.dispose()
    await servers.restart("b")
    async with servers.servers["b"].http() as b:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            items = (await b.get(f"{base}/{node['id']}/schedules")).json()["items"]
            if items[0]["state"] != "pending":
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        feed = await _events(b, realm)
    assert items[0]["state"] == "done", items
    assert [e["actor"] for e in feed if e["type"] == "directive.status_changed"] == [
        f"schedule:{sid}"
    ]
