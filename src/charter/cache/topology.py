"""A Redis Cluster's topology as the cluster bus needs it: who serves each slot, and whether a
slot's new master is the old one's replica (a failover) or another master (a reshard)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SLOTS = 16384


@dataclass(frozen=True, slots=True)
class Topology:
    """Who serves each slot (an address and a node id per slot; "" for none), and each
    master's replicas (by node id)."""

    owners: list[str]
    ids: list[str]
    replicas: dict[str, frozenset[str]]


class Succession:
    """Every slot's last known master and every master's known replicas, across reads: a slot
    whose master is replaced by one of that master's replicas was failed over, which may
    have lost the writes the old master had not passed on."""

    def __init__(self) -> None:
        self._ids = [""] * SLOTS
        self._replicas: dict[str, set[str]] = {}

    def failed_over(self, topology: Topology) -> bool:
        """Whether this reading shows a failover since the last one (and remember it)."""
        failover = False
        for slot, new in enumerate(topology.ids):
            old = self._ids[slot]
            if not new:
                continue  # unserved for now: judged when a master serves it again
            if old and old != new and new in self._replicas.get(old, ()):
                failover = True
            self._ids[slot] = new
        for master, replicas in topology.replicas.items():
            self._replicas.setdefault(master, set()).update(replicas)
        return failover


def read_nodes(raw: Any) -> Topology:
    """The topology in a `CLUSTER NODES` reply."""
    # CLUSTER NODES, a line per node: <id> <host:port@bus> <flags> <master id or -> <ping>
    # <pong> <epoch> <link> <slot or start-end> … (a "[…]" item is a slot in migration).
    owners = [""] * SLOTS
    ids = [""] * SLOTS
    replicas: dict[str, frozenset[str]] = {}
    for line in (raw.decode() if isinstance(raw, bytes) else str(raw)).splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        node_id, address, flags = parts[0], parts[1].split("@")[0], set(parts[2].split(","))
        if "slave" in flags and parts[3] != "-":
            replicas[parts[3]] = replicas.get(parts[3], frozenset()) | {node_id}
        if "master" not in flags or flags & {"fail", "fail?"}:
            continue  # a failing master's slots are served by no one until a replica is
        for item in parts[8:]:
            if item.startswith("["):
                continue
            first, _, last = item.partition("-")
            for slot in range(int(first), int(last or first) + 1):
                owners[slot] = address
                ids[slot] = node_id
    return Topology(owners, ids, replicas)
