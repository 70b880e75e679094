"""Reading CLUSTER NODES, and telling a failover (a replica took its master's slots) from a
reshard (another master took them): only the first may have lost writes."""

from __future__ import annotations

from charter.cache.topology import Succession, read_nodes

_BEFORE = """\
aaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-8191
bbb 127.0.0.1:7001@17001 master - 0 0 2 connected 8192-16383
ccc 127.0.0.1:7002@17002 slave aaa 0 0 1 connected
ddd 127.0.0.1:7003@17003 slave bbb 0 0 2 connected
"""

_FAILED = """\
aaa 127.0.0.1:7000@17000 master,fail - 0 0 1 disconnected 0-8191
bbb 127.0.0.1:7001@17001 myself,master - 0 0 2 connected 8192-16383
ccc 127.0.0.1:7002@17002 slave aaa 0 0 1 connected
ddd 127.0.0.1:7003@17003 slave bbb 0 0 2 connected
"""

_PROMOTED = """\
aaa 127.0.0.1:7000@17000 master,fail - 0 0 1 disconnected
bbb 127.0.0.1:7001@17001 myself,master - 0 0 2 connected 8192-16383
ccc 127.0.0.1:7002@17002 master - 0 0 3 connected 0-8191
ddd 127.0.0.1:7003@17003 slave bbb 0 0 2 connected
"""

_RESHARDED = """\
aaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 16-8191 [16->-bbb]
bbb 127.0.0.1:7001@17001 master - 0 0 4 connected 0-15 8192-16383
ccc 127.0.0.1:7002@17002 slave aaa 0 0 1 connected
ddd 127.0.0.1:7003@17003 slave bbb 0 0 2 connected
"""


def test_the_owner_of_every_slot_and_the_replicas_of_every_master() -> None:
    topology = read_nodes(_BEFORE.encode())
    assert topology.owners[0] == topology.owners[8191] == "127.0.0.1:7000"
    assert topology.owners[8192] == topology.owners[16383] == "127.0.0.1:7001"
    assert topology.replicas == {"aaa": frozenset({"ccc"}), "bbb": frozenset({"ddd"})}
    failing = read_nodes(_FAILED)
    assert failing.owners[0] == ""
    assert failing.owners[8192] == "127.0.0.1:7001"


def test_a_replica_taking_its_masters_slots_is_a_failover() -> None:
    succession = Succession()
    assert not succession.failed_over(read_nodes(_BEFORE))
    assert not succession.failed_over(read_nodes(_FAILED))  # nobody serves them yet
    assert succession.failed_over(read_nodes(_PROMOTED))
    assert not succession.failed_over(read_nodes(_PROMOTED))  # told once


def test_another_master_taking_slots_is_no_failover() -> None:
    succession = Succession()
    assert not succession.failed_over(read_nodes(_BEFORE))
    resharded = read_nodes(_RESHARDED)
    assert resharded.owners[15] == "127.0.0.1:7001"
    assert resharded.owners[16] == "127.0.0.1:7000"
    assert not succession.failed_over(resharded)
