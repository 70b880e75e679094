"""Watch Redis until each of many keys no longer holds the entry it held: a child process.

Polling 10 000 keys costs tens of milliseconds of Python a pass, so it runs in its own process
(`python -m benchmarks.evictions`) and does not delay the parent, which times the commit.
The child reads the first 32 bytes of every key (`GETRANGE`, pipelined), notes each live
entry's stamp, answers `ready <live keys>`, waits for `go` on stdin, then polls the keys not
yet gone until all are or the time is up, and answers with each key's CLOCK_MONOTONIC time of
going (null: never seen gone) as JSON.

A key is gone when it is absent, holds a tombstone, or holds an entry stamped later than the
one it held (a reader refilled it after the invalidation): in each case the old entry can no
longer be served.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from redis import Redis

from benchmarks.watchers import ROOT

_CHUNK = 2000


def _stamp(head: bytes) -> int | None:
    """The stamp of a live entry (`c1|<stamp>|cmp_…|…`); None for anything else."""
    parts = head.split(b"|", 3)
    if len(parts) < 3 or parts[0] != b"c1" or not parts[1].isdigit() or parts[2][:1] == b"-":
        return None
    return int(parts[1])


def _heads(redis: Redis, keys: list[str]) -> list[bytes]:
    out: list[bytes] = []
    for start in range(0, len(keys), _CHUNK):
        pipe = redis.pipeline(transaction=False)
        for key in keys[start : start + _CHUNK]:
            pipe.getrange(key, 0, 31)
        out += pipe.execute()
    return out


def _child(config: dict[str, Any]) -> None:
    redis = Redis.from_url(config["redis_url"])
    keys: list[str] = config["keys"]
    held = [_stamp(head) for head in _heads(redis, keys)]
    print(f"ready {sum(s is not None for s in held)}", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    gone: list[float | None] = [None if s is not None else 0.0 for s in held]
    deadline = time.monotonic() + config["seconds"]
    waiting = [i for i, s in enumerate(held) if s is not None]
    while waiting and time.monotonic() < deadline:
        for start in range(0, len(waiting), _CHUNK):
            chunk = waiting[start : start + _CHUNK]
            heads = _heads(redis, [keys[i] for i in chunk])
            now = time.monotonic()
            for i, head in zip(chunk, heads, strict=True):
                stamp = _stamp(head)
                if stamp is None or stamp > (held[i] or 0):
                    gone[i] = now
        waiting = [i for i in waiting if gone[i] is None]
        time.sleep(0.002)
    print(json.dumps(gone), flush=True)
    redis.close()


class Evictions:
    """The parent's handle on one polling child."""

    def __init__(self, redis_url: str, keys: list[str], seconds: float) -> None:
        self.config = {"redis_url": redis_url, "keys": keys, "seconds": seconds}
        self._child: asyncio.subprocess.Process | None = None

    async def ready(self) -> int:
        """Start the child; returns how many keys hold a live entry."""
        self._child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.evictions",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
            cwd=ROOT,
        )
        assert self._child.stdin is not None
        assert self._child.stdout is not None
        self._child.stdin.write(json.dumps(self.config).encode() + b"\n")
        await self._child.stdin.drain()
        line = (await asyncio.wait_for(self._child.stdout.readline(), 60)).decode()
        if not line.startswith("ready "):
            raise RuntimeError(f"the eviction poller failed: {line!r}")
        return int(line.split()[1])

    async def go(self) -> None:
        assert self._child is not None
        assert self._child.stdin is not None
        self._child.stdin.write(b"go\n")
        await self._child.stdin.drain()

    async def result(self) -> list[float | None]:
        assert self._child is not None
        assert self._child.stdout is not None
        seconds = float(self.config["seconds"])  # type: ignore[arg-type]
        line = await asyncio.wait_for(self._child.stdout.readline(), seconds + 30)
        await self._child.wait()
        return list(json.loads(line))

    async def close(self) -> None:
        if self._child is not None and self._child.returncode is None:
            self._child.kill()
            await self._child.wait()


if __name__ == "__main__":
    _child(json.loads(sys.stdin.readline()))
