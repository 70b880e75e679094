"""Scenario 6: a realm of 100 000 nodes and 1 000 000 versions against one of 100 nodes.

Both realms are bulk-seeded (`bulk.py`) with the same shape rules: a root, teams, sub-teams
and agent-level nodes, ten versions a node (so ten events a node), and about five nodes per
owning agent. One Charter server answers a sequential client (one keep-alive connection, so
each figure is a latency, not a queue); the two realms alternate round by round, and each
figure is the large realm's over the small one's (the small realm is the baseline):

- read: `GET …/directives/{id}` of a random agent-level node;
- list: `GET …/directives?limit=50`, from the start and from a random node on (keyset);
- versions: `GET …/directives/{id}/versions` of a random node (ten versions each);
- write: a CAS body change, `PATCH …/directives/{id}` with `If-Match`, on a random node;
- cold composition: `Prompts.compute` in-process (the cache-miss path), for the same
  seventeen agents in both realms, each owning about five nodes.
"""

from __future__ import annotations

import json
import random
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks import bulk
from benchmarks.load import Http1
from benchmarks.servers import Server
from charter.api.params import encode_cursor
from charter.cache.local import LocalTier
from charter.db.session import Database
from charter.services.prompts import Prompts

VERSIONS = 10
NODES_PER_OWNER = 5
COMPOSED_AGENTS = 17
OPERATIONS = ("read", "list", "list_after", "versions", "write", "composition")


def shape(nodes: int) -> bulk.Shape:
    """A tree of `nodes` nodes: 0.1 % teams, 1 % sub-teams (at least 3 and 10), the rest
    agent-level nodes, about five per owning agent."""
    teams = max(3, nodes // 1000)
    subteams = max(10, nodes // 100)
    agents = nodes - 1 - teams - subteams
    return bulk.Shape(
        nodes=nodes,
        teams=teams,
        subteams=subteams,
        versions=VERSIONS,
        owners=max(1, agents // NODES_PER_OWNER),
    )


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "n": len(ordered),
    }


class _Client:
    """One realm's operations, each timed around one request."""

    def __init__(self, port: int, key: str, seeded: bulk.Seeded, prompts: Prompts) -> None:
        self.http = Http1("127.0.0.1", port)
        self.auth = {"Authorization": f"Bearer {key}"}
        self.seeded = seeded
        self.prompts = prompts
        self.revisions: dict[str, int] = {}
        self.random = random.Random(seeded.realm)
        self.base = f"/v1/realms/{seeded.realm}/directives"

    def _node(self) -> str:
        return self.seeded.agent_node(self.random.randrange(self.seeded.shape.agents))

    async def _get(self, path: str) -> None:
        status, _, answer = await self.http.request("GET", path, self.auth)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {answer[:200]!r}")

    async def read(self) -> None:
        await self._get(f"{self.base}/{self._node()}")

    async def list(self) -> None:
        await self._get(f"{self.base}?limit=50")

    async def list_after(self) -> None:
        await self._get(f"{self.base}?limit=50&cursor={encode_cursor(self._node())}")

    async def versions(self) -> None:
        await self._get(f"{self.base}/{self._node()}/versions")

    async def write(self) -> None:
        node = self._node()
        expected = self.revisions.get(node, VERSIONS)
        body = json.dumps({"body": f"{bulk.BODY} Changed {secrets.token_hex(4)}."}).encode()
        headers = {**self.auth, "Content-Type": "application/json", "If-Match": f'"{expected}"'}
        status, fields, answer = await self.http.request(
            "PATCH", f"{self.base}/{node}", headers, body
        )
        if status != 200:
            raise RuntimeError(f"PATCH answered {status}: {answer[:200]!r}")
        self.revisions[node] = int(fields["etag"].strip('"'))

    async def composition(self) -> None:
        agent = self.seeded.owner(self.random.randrange(COMPOSED_AGENTS))
        await self.prompts.compute(self.seeded.realm, agent)


async def _timed(op: Callable[[], Awaitable[None]], count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        await op()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def _measure(
    clients: dict[str, _Client], rounds: int, count: int
) -> dict[str, dict[str, list[dict[str, float]]]]:
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        op: {"large": [], "small": []} for op in OPERATIONS
    }
    for client in clients.values():  # warm: connections, prepared statements, records
        for op in OPERATIONS:
            await _timed(getattr(client, op), 20)
    for i in range(rounds):
        order = ("small", "large") if i % 2 == 0 else ("large", "small")
        for op in OPERATIONS:
            for side in order:
                result = _summary(await _timed(getattr(clients[side], op), count))
                runs[op][side].append(result)
        line = "  ".join(
            f"{op} {runs[op]['large'][-1]['p50_ms']:.2f}/{runs[op]['small'][-1]['p50_ms']:.2f}"
            for op in OPERATIONS
        )
        print(f"  size round {i + 1} p50 ms large/small: {line}", flush=True)
    return runs


async def run(
    cfg: dict[str, Any], work: Path, admin_key: str, *, rounds: int, count: int
) -> dict[str, Any]:
    tag = secrets.token_hex(3)
    seeded: dict[str, bulk.Seeded] = {}
    seconds: dict[str, float] = {}
    for side, nodes in (("small", cfg["size_small"]), ("large", cfg["size_large"])):
        started = time.monotonic()
        seeded[side] = await bulk.seed(cfg["owner_dsn"], f"size-{side}-{tag}", shape(nodes))
        seconds[side] = time.monotonic() - started
        print(
            f"  seeded {seeded[side].realm}: {nodes} nodes, {nodes * VERSIONS} versions "
            f"in {seconds[side]:.1f} s",
            flush=True,
        )
    server = Server(
        "charter",
        "charter.app:app_from_env",
        {
            "CHARTER_DATABASE_URL": cfg["app_url"],
            "CHARTER_REDIS_URL": cfg["redis_url"],
            "CHARTER_BOOTSTRAP_KEY": admin_key,
            "CHARTER_RATE_LIMIT": "0",
        },
        work / "charter-size.log",
    )
    db = Database.connect(cfg["app_url"], pool_size=2)
    clients: dict[str, _Client] = {}
    try:
        server.wait_ready()
        prompts = Prompts(db, LocalTier(), None)
        clients = {side: _Client(server.port, admin_key, s, prompts) for side, s in seeded.items()}
        runs = await _measure(clients, rounds, count)
    finally:
        for client in clients.values():
            await client.http.close()
        await db.dispose()
        server.stop()
    return {
        "realms": {
            side: {
                "id": s.realm,
                "nodes": s.shape.nodes,
                "versions": s.shape.nodes * s.shape.versions,
                "events": s.revision,
                "seed_seconds": seconds[side],
            }
            for side, s in seeded.items()
        },
        "runs": runs,
    }
