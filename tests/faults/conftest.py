"""Fault runs: a PostgreSQL cluster and a Redis of their own, never the shared ones.

The cluster lives for the package (initdb and migrations take seconds); Redis, the servers and
the realm are new for each test. Everything started is stopped in a `finally`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from tests.faults.rig import Balanced, ClusterRig, Fleet, Rig, SnapshottingRedis
from tests.support.api import new_realm_id
from tests.support.postgres import OwnPostgres
from tests.support.redis_cluster import OwnRedisCluster, missing_tools

# The cluster runs put the realm in one of the first slots, which `--cluster reshard` moves.
FIRST_SLOTS = 16

_SUMMARIES = pytest.StashKey[list[str]]()


@pytest.fixture(scope="package")
async def cluster() -> AsyncIterator[OwnPostgres]:
    postgres = OwnPostgres()
    try:
        await postgres.create()
        yield postgres
    finally:
        await postgres.destroy()


@pytest.fixture
async def rig(
    cluster: OwnPostgres, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Rig]:
    if not await cluster.running():
        await cluster.start()  # a test that failed mid-outage may have left it stopped
    (tmp_path / "redis").mkdir()
    (tmp_path / "logs").mkdir()
    redis = SnapshottingRedis(tmp_path / "redis")
    fleet = Fleet(tmp_path / "logs", secrets.token_urlsafe(24), cluster.app_url)
    summaries = request.config.stash.setdefault(_SUMMARIES, [])
    try:
        await redis.start()
        async with Rig.built(cluster, redis, fleet, new_realm_id(), tmp_path, summaries) as rig:
            yield rig
    finally:
        fleet.stop_all()
        redis.stop()


@pytest.fixture
async def cluster_rig(
    cluster: OwnPostgres, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[ClusterRig]:
    """The stage on a Redis Cluster of its own (3 masters, 3 replicas), the realm's slot
    among the first master's lowest."""
    reason = missing_tools()
    if reason is not None:
        pytest.skip(reason)
    if not await cluster.running():
        await cluster.start()
    (tmp_path / "logs").mkdir()
    redis = OwnRedisCluster(tmp_path / "redis-cluster")
    fleet = Fleet(tmp_path / "logs", secrets.token_urlsafe(24), cluster.app_url)
    summaries = request.config.stash.setdefault(_SUMMARIES, [])
    realm = new_realm_id()
    while key_slot(realm.encode()) >= FIRST_SLOTS:
        realm = new_realm_id()
    try:
        await redis.start()
        async with ClusterRig.built(cluster, redis, fleet, realm, tmp_path, summaries) as rig:
            yield rig
    finally:
        fleet.stop_all()
        redis.stop()


@pytest.fixture
async def balanced(
    cluster: OwnPostgres, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Balanced]:
    if not await cluster.running():
        await cluster.start()
    (tmp_path / "redis").mkdir()
    (tmp_path / "logs").mkdir()
    redis = SnapshottingRedis(tmp_path / "redis")
    fleet = Fleet(tmp_path / "logs", secrets.token_urlsafe(24), cluster.app_url)
    summaries = request.config.stash.setdefault(_SUMMARIES, [])
    try:
        await redis.start()
        async with Balanced.built(
            cluster, redis, fleet, new_realm_id(), tmp_path, summaries
        ) as balanced:
            yield balanced
    finally:
        fleet.stop_all()
        redis.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures of every fault run, shown without `-s` too."""
    summaries = terminalreporter.config.stash.get(_SUMMARIES, [])
    if summaries:
        terminalreporter.section("fault runs")
        for line in summaries:
            terminalreporter.write_line(line)
