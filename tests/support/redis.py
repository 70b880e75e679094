"""Redis for tests: the shared server's URL, and a redis-server of a test's own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tests.support.ports import free_port
from tests.support.servers import stop_group, tail

# scripts/test gives each parallel run a db number of its own.
SHARED_REDIS_URL = os.environ.get("CHARTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class OwnRedis:
    """A private redis-server that can be stopped with its data saved and started again."""

    SAVE = ""  # redis-server's `--save`: no snapshots unless a subclass asks

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.process = self._spawn()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited:\n{tail(self.directory / 'redis.log')}")
            if await self._ping():
                return
            await asyncio.sleep(0.01)
        pytest.fail("redis-server did not answer PING within 10 s")

    def _spawn(self) -> subprocess.Popen[bytes]:
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--save", self.SAVE]
        args += ["--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no"]
        args += ["--logfile", "redis.log"]
        return subprocess.Popen(
            ["redis-server", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def shutdown_save(self) -> None:
        """Stop the server, writing its data to `dir` first: a restart brings it all back."""
        assert self.process is not None
        await self._cli("SHUTDOWN", "SAVE")
        deadline = time.monotonic() + 10.0
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail("redis-server did not shut down within 10 s")
            await asyncio.sleep(0.02)
        assert (self.directory / "dump.rdb").exists()

    async def _ping(self) -> bool:
        redis = Redis(host="127.0.0.1", port=self.port, retry=Retry(NoBackoff(), 0))
        try:
            return bool(await redis.ping())
        except (RedisError, OSError):
            return False
        finally:
            await redis.aclose()

    async def get(self, key: str) -> bytes | None:
        # A client per call: the server comes and goes under this test.
        redis = Redis(host="127.0.0.1", port=self.port, socket_timeout=2.0)
        try:
            value: Any = await redis.get(key)
        finally:
            await redis.aclose()
        return value if isinstance(value, bytes) else None

    async def _cli(self, *command: str) -> str:
        cli = await asyncio.create_subprocess_exec(
            "redis-cli",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            *command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(cli.communicate(), 10.0)
        return out.decode().strip()

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, first=signal.SIGTERM)
