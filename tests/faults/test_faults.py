"""Faults under concurrent compare-and-swap load: a server, PostgreSQL or Redis dies mid-run.

Each run records every call (load.py), injects one fault, lets the system recover under load,
then checks the whole history (history.py): no acknowledged write lost, versions contiguous,
no expected revision winning twice, no read older than a write acknowledged before it, and,
once the outbox has drained, no cache serving a stale composition. Not a single 500.
The last run kills Redis with no traffic at all, so no process has a failed read or write to
warn it that Redis may come back from a snapshot older than its last tombstones.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.history import Operation, Outcome, PromptRead, Verdict, Write
from tests.faults.load import Load
from tests.faults.rig import SERVERS, Rig

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

OUTAGE_SECONDS = 1.5
RECOVERY_SECONDS = 2.0
MIN_OPERATIONS = 200  # a run that checked fewer did not really race


def _between(operations: list[Operation], start: float, end: float) -> list[Operation]:
    return [op for op in operations if start <= op.start and op.end <= end]


def _assert_clean(verdict: Verdict, rig: Rig) -> None:
    shown = "\n".join(str(anomaly) for anomaly in verdict.anomalies[:20])
    inside = "\n".join(rig.fleet.unexpected()[:20])
    assert not verdict.anomalies, f"{len(verdict.anomalies)} anomalies:\n{shown}\n{inside}"


async def _judge(rig: Rig, load: Load, fault: str, recovered: float) -> Verdict:
    drain = await rig.drained()
    verdict = await rig.verdict(load)
    rig.report(fault, verdict, load, drain)
    _assert_clean(verdict, rig)
    assert verdict.operations >= MIN_OPERATIONS
    server_errors = [op for op in load.operations if (op.status or 0) >= 500 and op.status != 503]
    assert not server_errors
    after = _between(load.operations, recovered, float("inf"))
    for server in SERVERS:
        acked = [op for op in after if isinstance(op, Write) and op.server == server]
        assert any(w.outcome is Outcome.OK for w in acked), f"no write through {server} recovered"
    return verdict


async def test_a_server_killed_mid_write_loses_nothing(rig: Rig) -> None:
    async with rig.loaded(seed=1) as load:
        await load.until_writing("a")
        killed = time.monotonic()
        await rig.fleet.kill("a")
        await asyncio.sleep(OUTAGE_SECONDS / 3)
        await rig.fleet.restart("a")
        recovered = time.monotonic()
        await asyncio.sleep(RECOVERY_SECONDS)
    await _judge(rig, load, "kill-server", recovered)
    cut = _between(load.operations, killed - 60, recovered)
    assert any(op.server == "a" and op.outcome is Outcome.INDETERMINATE for op in cut)


async def test_postgres_stopped_immediately_gives_503_then_recovers(rig: Rig) -> None:
    async with rig.loaded(seed=2) as load:
        await rig.cluster.stop("immediate")
        down = time.monotonic()
        try:
            await asyncio.sleep(OUTAGE_SECONDS)
        finally:
            restarting = time.monotonic()
            await rig.cluster.start()
        recovered = time.monotonic()
        await asyncio.sleep(RECOVERY_SECONDS)
    await _judge(rig, load, "postgres-stop", recovered)
    refused = [
        op
        for op in _between(load.operations, down, restarting)
        if isinstance(op, Write) and op.status == 503 and op.retry_after
    ]
    assert refused, "no write met the outage with a 503 and Retry-After"


async def test_redis_killed_costs_no_write_and_serves_nothing_stale(rig: Rig) -> None:
    async with rig.loaded(seed=3) as load:
        await rig.redis.kill()
        down = time.monotonic()
        await asyncio.sleep(OUTAGE_SECONDS)
        restarting = time.monotonic()
        await rig.redis.start()
        recovered = time.monotonic()
        await asyncio.sleep(RECOVERY_SECONDS)
    await _judge(rig, load, "kill-redis", recovered)
    during = _between(load.operations, down, restarting)
    assert any(isinstance(op, Write) and op.outcome is Outcome.OK for op in during)
    assert any(isinstance(op, PromptRead) and op.outcome is Outcome.OK for op in during)


async def _every_prompt(rig: Rig, load: Load) -> None:
    for server in SERVERS:
        for agent in sorted(rig.tree.chains):
            await load.prompt(server, agent)


async def _write_after_a_snapshot(rig: Rig, load: Load) -> None:
    """Prompts cached everywhere, a Redis snapshot, then a write it does not hold, delivered."""
    await _every_prompt(rig, load)
    await rig.redis.freeze()
    root = rig.tree.directives["root"]
    write = await load.write("a", root, (await load.read("a", root)).revision)
    assert write.outcome is Outcome.OK
    await rig.drained()  # delivered: nothing is pending when Redis goes


async def _judge_every_prompt(rig: Rig, load: Load, fault: str) -> None:
    await _every_prompt(rig, load)
    drain = await rig.drained()
    verdict = await rig.verdict(load)
    rig.report(fault, verdict, load, drain)
    _assert_clean(verdict, rig)


async def test_a_quiet_redis_kill_brings_back_nothing_stale(rig: Rig) -> None:
    """No traffic during the outage, and Redis back from a snapshot older than the last write:
    its entries predate that write's tombstones, which it lost."""
    load = Load(rig.tree, {name: rig.clients[name] for name in SERVERS}, seed=4)
    await _write_after_a_snapshot(rig, load)
    await rig.redis.kill()
    # Only health checks meanwhile, as a load balancer would send.
    deadline = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < deadline:
        for name in SERVERS:
            assert (await rig.clients[name].get("/readyz")).status_code == 503
        await asyncio.sleep(0.1)
    await rig.redis.start()
    await rig.resubscribed()
    await _judge_every_prompt(rig, load, "quiet-redis")


async def test_redis_back_older_while_no_server_runs_serves_nothing_stale(rig: Rig) -> None:
    """Every server down, Redis back from a snapshot older than the last write: the servers
    that start next have seen no failure, yet must not trust what Redis reloaded."""
    load = Load(rig.tree, {name: rig.clients[name] for name in SERVERS}, seed=5)
    await _write_after_a_snapshot(rig, load)
    for server in SERVERS:
        await rig.fleet.kill(server)
    await rig.redis.kill()
    await rig.redis.start()
    for server in SERVERS:
        await rig.fleet.restart(server)
    await _judge_every_prompt(rig, load, "redis-older-cold-start")
