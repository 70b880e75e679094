"""HAProxy from Debian's package in front of `charter serve` processes, on a spare port.

The configuration is the one `scripts/cluster` writes (`scripts/cluster config`), so the
tests run what a user runs. HAProxy runs in the foreground (`-db`) in a process group of its
own, so it can be stopped and started again on the same port (a load balancer restart).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.servers import stop_group, tail

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 10.0


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(found).exists():
        pytest.fail("no haproxy: scripts/tools installs it (apt-get install haproxy)")
    return found


class OwnHaproxy:
    def __init__(self, directory: Path, backends: Sequence[int], key: str | None) -> None:
        self.port = free_port()
        self.key = key
        self.config = directory / "haproxy.cfg"
        self.log = directory / "haproxy.log"
        command = ["bash", str(ROOT / "scripts" / "cluster"), "config", str(self.port)]
        text = subprocess.run(
            [*command, *map(str, backends)], capture_output=True, text=True, check=True
        ).stdout
        self.config.write_text(text)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def http(self, timeout: float = 10.0) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    async def start(self) -> None:
        """Start, and wait (bounded) until a request through it reaches a ready server."""
        self.process = self._spawn()
        deadline = time.monotonic() + START_SECONDS
        async with httpx.AsyncClient(base_url=self.url, timeout=1.0) as http:
            while True:
                if self.process.poll() is not None:
                    pytest.fail(f"haproxy exited:\n{tail(self.log)}")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"nothing ready through haproxy in {START_SECONDS} s")
                await asyncio.sleep(0.05)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [haproxy_binary(), "-db", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process, first=signal.SIGTERM)
        self.process = None
