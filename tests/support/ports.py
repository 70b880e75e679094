"""Loopback ports for the processes tests start.

A port the kernel picks (`bind(("127.0.0.1", 0))`) comes from the ephemeral range, which every
outgoing connection of the run draws from as well: between asking and the child process
binding it, a client socket may take it, and the child fails to start (a Redis Cluster of six
nodes and six bus ports asks for twelve). So ports come from below that range instead, are
checked free at the moment of asking, and are never handed out twice in one test process.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

# Below Linux's default ephemeral range (32768 to 60999), above the well-known and registered
# services a test machine usually runs.
_LOW, _HIGH = 20000, 32767
_given: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, outside the ephemeral range, and not
    handed out before by this process."""
    low, high = _range()
    # Spread by process, so parallel test runs on one machine start apart.
    candidates = list(range(low, high + 1))
    random.Random(os.getpid()).shuffle(candidates)
    for port in candidates:
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free loopback port between {low} and {high}")


def _range() -> tuple[int, int]:
    """The ports below the kernel's ephemeral range (its start read from /proc when present)."""
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _LOW, _HIGH
    return (_LOW, min(_HIGH, start - 1)) if start - 1 > _LOW else (_LOW, _HIGH)
