"""Due work across real processes: each schedule and lease expiry happens once (ADR 0008).

Two `charter serve` processes on one PostgreSQL and one Redis both run the due-work loop; a
server on SQLite is stopped while work falls due, and does it when it starts again.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import new_realm_id
from tests.support.servers import CharterServer

pytestmark = pytest.mark.timeout(60)

LATE = timedelta(seconds=1)


async def _realm(http: httpx.AsyncClient) -> str:
    realm = new_realm_id()
    assert (await http.post("/v1/realms", json={"id": realm})).status_code == 201
    return realm


async def _node(http: httpx.AsyncClient, realm: str) -> dict[str, Any]:
    made = await http.post(
        f"/v1/realms/{realm}/directives", json={"level": "realm", "title": "T", "body": "B"}
    )
    assert made.status_code == 201, made.text
    node: dict[str, Any] = made.json()
    return node


async def _feed(http: httpx.AsyncClient, realm: str) -> list[dict[str, Any]]:
    page = await http.get(f"/v1/realms/{realm}/events", params={"limit": 500})
    items: list[dict[str, Any]] = page.json()["items"]
    return items


async def _schedule(http: httpx.AsyncClient, realm: str, node: dict[str, Any], at: datetime) -> str:
    body = {"at": at.isoformat(), "action": {"status": "paused"}}
    made = await http.post(f"/v1/realms/{realm}/directives/{node['id']}/schedules", json=body)
    assert made.status_code == 201, made.text
    sid: str = made.json()["id"]
    return sid


async def test_with_two_processes_each_schedule_runs_once_on_time(
    two_servers: tuple[CharterServer, CharterServer],
) -> None:
    server_a, server_b = two_servers
    async with server_a.http() as a, server_b.http() as b:
        realm = await _realm(a)
        start = datetime.now(UTC) + timedelta(seconds=1)
        due: dict[str, datetime] = {}
        for i in range(10):
            http = a if i % 2 else b
            at = start + timedelta(seconds=i * 0.1)
            due[await _schedule(http, realm, await _node(http, realm), at)] = at
        await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 2.5)
        feed = await _feed(b, realm)
    ran = [e for e in feed if e["actor"].startswith("schedule:")]
    assert sorted(e["actor"].removeprefix("schedule:") for e in ran) == sorted(due)
    for event in ran:
        late = datetime.fromisoformat(event["occurred_at"]) - due[event["actor"][9:]]
        assert timedelta(0) <= late < LATE, event


async def test_with_two_processes_a_lease_expires_once(
    two_servers: tuple[CharterServer, CharterServer],
) -> None:
    server_a, server_b = two_servers
    async with server_a.http() as a, server_b.http() as b:
        realm = await _realm(a)
        nodes = [await _node(a, realm) for _ in range(4)]
        made = [
            (
                await a.post(
                    f"/v1/realms/{realm}/directives/{n['id']}/claims",
                    json={"agent_id": "w", "lease_seconds": 5},
                )
            ).json()
            for n in nodes
        ]
        await asyncio.sleep(7)
        feed = await _feed(b, realm)
    expired = [e for e in feed if e["type"] == "directive.claim_expired"]
    assert sorted(e["payload"]["claim_id"] for e in expired) == sorted(c["id"] for c in made)
    for claim in made:
        event = next(e for e in expired if e["payload"]["claim_id"] == claim["id"])
        late = datetime.fromisoformat(event["occurred_at"]) - datetime.fromisoformat(
            claim["expires_at"]
        )
        assert timedelta(0) <= late < LATE


async def test_work_due_while_no_server_ran_is_done_at_the_next_start(tmp_path: Path) -> None:
    with CharterServer.on_sqlite(tmp_path) as server:
        await server.astart()
        async with server.http() as http:
            realm = await _realm(http)
            node = await _node(http, realm)
            other = await _node(http, realm)
            sid = await _schedule(http, realm, node, datetime.now(UTC) + timedelta(seconds=1))
            claim = (
                await http.post(
                    f"/v1/realms/{realm}/directives/{other['id']}/claims",
                    json={"agent_id": "w", "lease_seconds": 5},
                )
            ).json()
        server.stop()
        await asyncio.sleep(5.5)  # both fall due while nothing runs
        started = datetime.now(UTC)
        await server.astart()
        async with server.http() as http:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                feed = await _feed(http, realm)
                done = [e for e in feed if e["actor"] == f"schedule:{sid}"]
                expired = [e for e in feed if e["type"] == "directive.claim_expired"]
                if done and expired:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            feed = await _feed(http, realm)
    done = [e for e in feed if e["actor"] == f"schedule:{sid}"]
    expired = [e for e in feed if e["type"] == "directive.claim_expired"]
    assert len(done) == 1
    assert len(expired) == 1
    assert expired[0]["payload"]["claim_id"] == claim["id"]
    assert datetime.fromisoformat(done[0]["occurred_at"]) >= started
