"""A real `charter serve` on loopback, on a SQLite file of its own, for the client and CLI.

The client speaks HTTP over real sockets, so these tests run the real server process: the
shared one for most tests (each works in a realm of its own), and a private one for the tests
that stop and restart it. Every process started here is stopped at teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from charter.client import Charter, RetryPolicy

ADMIN_KEY = "chk_client-tests-admin"
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.3)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`charter serve` on a fixed port and database: it can stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.database = directory / "charter.db"
        self.log = directory / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
        return env | {
            "CHARTER_DATABASE_URL": f"sqlite+aiosqlite:///{self.database}",
            "CHARTER_BOOTSTRAP_KEY": ADMIN_KEY,
        }

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        command = [sys.executable, "-m", "charter", "serve", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopping it stops its workers
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"charter serve exited early:\n{self._tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"charter serve not healthy within {STARTUP_SECONDS} s:\n{self._tail()}")

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def _tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def client(self, realm: str | None = None, retry: RetryPolicy = FAST_RETRY) -> Charter:
        return Charter(self.url, ADMIN_KEY, realm=realm, retry=retry)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the session; tests keep apart by working in realms of their own."""
    process = ServerProcess(tmp_path_factory.mktemp("charter-serve"))
    try:
        process.start()
        yield process
    finally:
        process.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server this test alone uses, to stop and restart."""
    process = ServerProcess(tmp_path)
    try:
        process.start()
        yield process
    finally:
        process.stop()


def new_realm(charter: Charter) -> str:
    realm_id = "c-" + uuid.uuid4().hex[:16]
    charter.create_realm(realm_id)
    return realm_id


@pytest.fixture
def charter(server: ServerProcess) -> Iterator[Charter]:
    with server.client() as client:
        yield client


@pytest.fixture
def realm(charter: Charter) -> str:
    return new_realm(charter)
