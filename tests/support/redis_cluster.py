"""A Redis Cluster of a test's own: `redis-server --cluster-enabled yes` nodes on spare loopback
ports, joined by `redis-cli --cluster create`, that a test can fail over, grow and shrink.

Every node runs in a process group of its own, with its data under the cluster's directory
(/tmp), and `stop` ends them all. The node timeout is short (a second), so a killed master's
replica takes over within a few seconds.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.support.ports import free_port
from tests.support.servers import kill_group, stop_group, tail

NODE_TIMEOUT_MS = 1000
SETTLE_SECONDS = 20.0


async def command(redis: Redis, *args: Any) -> Any:
    """One command, its reply unparsed (redis-py leaves `execute_command` untyped)."""
    return await redis.execute_command(*args)  # type: ignore[no-untyped-call]


def missing_tools() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian's redis-server package)"
    return None


@dataclass
class ClusterNode:
    port: int
    directory: Path
    # The cluster bus: a spare port of its own (the default, port + 10000, may be taken or
    # past 65535 for the high ports `free_port` hands out).
    bus_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def spawn(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--cluster-enabled", "yes"]
        args += ["--cluster-port", str(self.bus_port), "--cluster-config-file", "nodes.conf"]
        args += ["--cluster-node-timeout"]
        # A replica always stands for election, however long since it heard its master.
        args += [str(NODE_TIMEOUT_MS), "--cluster-replica-validity-factor", "0"]
        args += ["--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.directory), "--daemonize", "no", "--logfile", "redis.log"]
        self.process = subprocess.Popen(
            ["redis-server", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> Redis:
        return Redis(host="127.0.0.1", port=self.port, socket_timeout=2.0)


@dataclass(frozen=True, slots=True)
class NodeState:
    """One line of CLUSTER NODES, as far as the tests need it."""

    node_id: str
    address: str
    master: bool
    failed: bool
    slots: frozenset[int]


@dataclass
class OwnRedisCluster:
    directory: Path
    masters: int = 3
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """`CHARTER_REDIS_URL` for this cluster: every node it started with, as seeds."""
        seeds = ",".join(node.address for node in self.nodes)
        return f"redis+cluster://{seeds}"

    async def start(self) -> None:
        """Three masters and three replicas, every slot served, every node agreeing."""
        reason = missing_tools()
        if reason is not None:
            pytest.skip(reason)
        for index in range(self.masters * 2):
            self.nodes.append(ClusterNode(free_port(), self.directory / f"node-{index}"))
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            await self._answering(node)
        addresses = [node.address for node in self.nodes]
        await self.cli(
            "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"
        )
        await self.settled()

    async def _answering(self, node: ClusterNode) -> None:
        deadline = time.monotonic() + 10.0
        while True:
            assert node.process is not None
            if node.process.poll() is not None:
                pytest.fail(f"redis-server exited:\n{tail(node.directory / 'redis.log')}")
            redis = node.client()
            try:
                if await redis.ping():
                    return
            except (RedisError, OSError):
                pass
            finally:
                await redis.aclose()
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server on {node.port} did not answer PING within 10 s")
            await asyncio.sleep(0.02)

    async def cli(self, *args: str) -> str:
        """`redis-cli` with these arguments; its output, failing the test if it fails."""
        process = await asyncio.create_subprocess_exec(
            "redis-cli",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 30.0)
        text = out.decode(errors="replace")
        if process.returncode != 0 or "[ERR]" in text:
            pytest.fail(f"redis-cli {' '.join(args)} failed:\n{text[-2000:]}")
        return text

    async def states(self) -> list[NodeState]:
        """CLUSTER NODES as a running node sees it."""
        for node in self.nodes:
            if not node.running:
                continue
            redis = node.client()
            try:
                raw = await command(redis, "CLUSTER", "NODES")
            except (RedisError, OSError):
                continue
            finally:
                await redis.aclose()
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            return [_state(line) for line in text.splitlines() if line.strip()]
        pytest.fail("no node of the cluster answers")

    async def master_of(self, slot: int) -> ClusterNode:
        """The node a running node says serves `slot` (it may not have noticed a death yet)."""
        for state in await self.states():
            if state.master and slot in state.slots:
                return self._node(state.address)
        pytest.fail(f"no master serves slot {slot}")

    async def node_id(self, node: ClusterNode) -> str:
        redis = node.client()
        try:
            raw = await command(redis, "CLUSTER", "MYID")
        finally:
            await redis.aclose()
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def _node(self, address: str) -> ClusterNode:
        for node in self.nodes:
            if node.address == address:
                return node
        pytest.fail(f"{address} is not one of this cluster's nodes")

    async def settled(self, seconds: float = SETTLE_SECONDS) -> None:
        """Every running node says the cluster is ok and agrees on who serves every slot."""
        deadline = time.monotonic() + seconds
        while True:
            if await self._agreed():
                return
            if time.monotonic() > deadline:
                logs = "\n".join(tail(n.directory / "redis.log", 10) for n in self.nodes)
                pytest.fail(f"the cluster did not settle within {seconds} s:\n{logs}")
            await asyncio.sleep(0.1)

    async def _agreed(self) -> bool:
        views: list[dict[int, str]] = []
        for node in self.nodes:
            if not node.running:
                continue
            redis = node.client()
            try:
                info = await command(redis, "CLUSTER", "INFO")
                raw = await command(redis, "CLUSTER", "NODES")
            except (RedisError, OSError):
                return False
            finally:
                await redis.aclose()
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text:
                return False
            nodes_text = raw.decode() if isinstance(raw, bytes) else str(raw)
            owners: dict[int, str] = {}
            for state in (_state(line) for line in nodes_text.splitlines() if line.strip()):
                if state.master and not state.failed:
                    owners.update(dict.fromkeys(state.slots, state.address))
            if len(owners) != 16384:
                return False
            views.append(owners)
        return all(view == views[0] for view in views)

    async def kill(self, node: ClusterNode) -> None:
        """SIGKILL: no goodbye to the cluster, no last write saved."""
        assert node.process is not None
        await kill_group(node.process)

    async def failed_over(self, dead: ClusterNode, slot: int) -> ClusterNode:
        """Wait until a replica of `dead` serves `slot` and the survivors agree; the new master."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            master = await self.master_of(slot)
            if master is not dead and master.running:
                await self.settled()
                return master
            if time.monotonic() > deadline:
                pytest.fail(f"no replica took over slot {slot} within {SETTLE_SECONDS} s")
            await asyncio.sleep(0.05)

    async def add_node(self) -> ClusterNode:
        """A new empty master, joined to the cluster (it serves no slot yet)."""
        node = ClusterNode(free_port(), self.directory / f"node-{len(self.nodes)}")
        node.spawn()
        await self._answering(node)
        seed = next(n for n in self.nodes if n.running)
        self.nodes.append(node)
        await self.cli("--cluster", "add-node", node.address, seed.address)
        await self.settled()
        return node

    async def reshard(self, source: ClusterNode, target: ClusterNode, slots: int) -> None:
        """Move `slots` slots (the source's lowest) with their keys from source to target."""
        source_id, target_id = await self.node_id(source), await self.node_id(target)
        await self.cli(
            "--cluster", "reshard", source.address, "--cluster-from", source_id,
            "--cluster-to", target_id, "--cluster-slots", str(slots), "--cluster-yes",
        )  # fmt: skip
        await self.settled()

    async def move_slot(self, slot: int, target: ClusterNode) -> None:
        """Migrate one slot and its keys to `target`, the way `--cluster reshard` does."""
        source = await self.master_of(slot)
        source_id, target_id = await self.node_id(source), await self.node_id(target)
        src, dst = source.client(), target.client()
        try:
            await command(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            await command(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := await command(src, "CLUSTER", "GETKEYSINSLOT", slot, 100):
                await command(src, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            for node in (dst, src):
                await command(node, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        finally:
            await src.aclose()
            await dst.aclose()
        await self.settled()

    async def remove_node(self, node: ClusterNode) -> None:
        """`del-node` (the node must serve no slot): it leaves the cluster and shuts down."""
        seed = next(n for n in self.nodes if n.running and n is not node)
        await self.cli("--cluster", "del-node", seed.address, await self.node_id(node))
        if node.process is not None:
            stop_group(node.process, first=signal.SIGTERM)
        await self.settled()

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None:
                stop_group(node.process, first=signal.SIGKILL)


def _state(line: str) -> NodeState:
    # <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot> <slot> ...
    parts = line.split()
    flags = set(parts[2].split(","))
    slots: set[int] = set()
    for item in parts[8:]:
        if item.startswith("["):
            continue  # a slot being migrated or imported: still served by its old owner
        start, _, end = item.partition("-")
        slots.update(range(int(start), int(end or start) + 1))
    return NodeState(
        node_id=parts[0],
        address=parts[1].split("@")[0],
        master="master" in flags,
        failed="fail" in flags or "fail?" in flags,
        slots=frozenset(slots),
    )
