"""Redis Cluster faults under concurrent compare-and-swap load (DESIGN §6, docs/scaling.md).

The two loaded servers share a Redis Cluster of the test's own: 3 masters, 3 replicas. A master
killed with SIGKILL, its replica taking over; a node added, the realm's slot resharded onto it
and back, the node removed. The history checker must then find what it finds after every
other fault: no anomaly at all, so no stale prompt once the outbox has drained, no lost
invalidation, no read older than an acknowledged write.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.crc import key_slot

from tests.faults.history import Operation, Outcome, Write
from tests.faults.load import Load
from tests.faults.rig import SERVERS, ClusterRig

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]

RECOVERY_SECONDS = 2.0
MIN_OPERATIONS = 200
RESHARD_SLOTS = 16  # the realm's slot is among them (the cluster_rig fixture sees to it)


async def _judge(rig: ClusterRig, load: Load, fault: str, recovered: float) -> None:
    drain = await rig.drained()
    verdict = await rig.verdict(load)
    rig.report(fault, verdict, load, drain)
    shown = "\n".join(str(anomaly) for anomaly in verdict.anomalies[:20])
    assert not verdict.anomalies, f"{len(verdict.anomalies)} anomalies:\n{shown}"
    assert verdict.operations >= MIN_OPERATIONS
    server_errors = [op for op in load.operations if (op.status or 0) >= 500 and op.status != 503]
    assert not server_errors
    after: list[Operation] = [op for op in load.operations if op.start >= recovered]
    for server in SERVERS:
        acked = [op for op in after if isinstance(op, Write) and op.server == server]
        assert any(w.outcome is Outcome.OK for w in acked), f"no write through {server} recovered"


async def test_a_master_killed_fails_over_to_its_replica_and_serves_nothing_stale(
    cluster_rig: ClusterRig,
) -> None:
    rig = cluster_rig
    slot = key_slot(rig.tree.realm.encode())
    async with rig.loaded(seed=21) as load:
        await load.until_writing("a")
        dead = await rig.redis.master_of(slot)
        await rig.redis.kill(dead)
        heir = await rig.redis.failed_over(dead, slot)
        await rig.resubscribed(20.0)
        recovered = time.monotonic()
        await asyncio.sleep(RECOVERY_SECONDS)
    assert heir is not dead
    await _judge(rig, load, "cluster-failover", recovered)


async def test_a_node_added_and_removed_under_load_serves_nothing_stale(
    cluster_rig: ClusterRig,
) -> None:
    rig = cluster_rig
    slot = key_slot(rig.tree.realm.encode())
    async with rig.loaded(seed=22) as load:
        await load.until_writing("a")
        source = await rig.redis.master_of(slot)
        added = await rig.redis.add_node()
        await rig.redis.reshard(source, added, RESHARD_SLOTS)
        assert await rig.redis.master_of(slot) is added
        await asyncio.sleep(RECOVERY_SECONDS)  # the realm served by the new node, under load
        await rig.redis.reshard(added, source, RESHARD_SLOTS)
        await rig.redis.remove_node(added)
        assert await rig.redis.master_of(slot) is source
        recovered = time.monotonic()
        await asyncio.sleep(RECOVERY_SECONDS)
    await _judge(rig, load, "cluster-reshard", recovered)
