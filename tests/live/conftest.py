"""Real processes on loopback: `charter serve` subprocesses, and a redis-server of our own.

Every process a fixture starts is stopped in its `finally`, even when the test fails; servers
run in a session of their own so that stopping one stops its granian workers too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tests.conftest import new_realm_id

SHARED_REDIS_URL = os.environ.get("CHARTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
STARTUP_SECONDS = 20.0
STOP_SECONDS = 10.0

_ENVELOPE = re.compile(rb"c1\|(\d+)\|(cmp_[0-9a-f]{64}|-)\|")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop_group(process: subprocess.Popen[bytes], *, first: signal.Signals) -> None:
    """Signal the process group we made, then SIGKILL it if it will not go."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, first)
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_SECONDS)
    # Workers left behind by a dead parent share its group: make sure they are gone too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- charter servers -----------------------------------------------------------------------


@dataclass
class Server:
    base_url: str
    key: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, timeout: float = 10.0) -> httpx.AsyncClient:
        """A client that sends the server's bootstrap (admin) key."""
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)


def _spawn_server(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "charter", "serve", "--host", "127.0.0.1"]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _wait_ready(server: Server) -> None:
    """Alive (/healthz), then subscribed to invalidations (/readyz: cache ok) — bounded."""
    deadline = time.monotonic() + STARTUP_SECONDS
    async with server.client(timeout=1.0) as http:
        for path in ("/healthz", "/readyz"):
            while True:
                if server.process.poll() is not None:
                    pytest.fail(f"charter serve exited early:\n{_tail(server.log)}")
                try:
                    response = await http.get(path)
                    if (
                        response.status_code == 200
                        and response.json().get("cache") != "resubscribing"
                    ):
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"charter serve not {path} in {STARTUP_SECONDS} s:\n{_tail(server.log)}"
                    )
                await asyncio.sleep(0.05)


StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture(scope="module")
async def start_server(
    postgres_urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[StartServer]:
    """Starts `charter serve` processes on the test database; stops them all afterwards.

    Module-scoped: a server outlives one test, and every test works in a realm of its own.
    """
    _, app_url = postgres_urls
    logs = tmp_path_factory.mktemp("charter-logs")
    key = secrets.token_urlsafe(24)
    started: list[Server] = []

    async def start(redis_url: str = SHARED_REDIS_URL) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
        env |= {
            "CHARTER_DATABASE_URL": app_url,
            "CHARTER_REDIS_URL": redis_url,
            "CHARTER_BOOTSTRAP_KEY": key,
        }
        port = free_port()
        log = logs / f"charter-{len(started)}-{port}.log"
        server = Server(f"http://127.0.0.1:{port}", key, _spawn_server(port, env, log), log)
        started.append(server)
        await _wait_ready(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            _stop_group(server.process, first=signal.SIGTERM)


@pytest.fixture(scope="module")
async def two_servers(start_server: StartServer) -> tuple[Server, Server]:
    """Two processes on the shared PostgreSQL database and the shared Redis."""
    a, b = await asyncio.gather(start_server(), start_server())
    return a, b


# --- a redis-server of our own -------------------------------------------------------------


class OwnRedis:
    """A private redis-server that can be stopped with its data saved and started again."""

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
                pytest.fail(f"redis-server exited:\n{_tail(self.directory / 'redis.log')}")
            if await self._ping():
                return
            await asyncio.sleep(0.01)
        pytest.fail("redis-server did not answer PING within 10 s")

    SAVE = ""  # redis-server's `--save`: no snapshots unless a subclass asks

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
            _stop_group(self.process, first=signal.SIGTERM)


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    directory = tmp_path / "redis"
    directory.mkdir()
    redis = OwnRedis(directory)
    try:
        await redis.start()
        yield redis
    finally:
        redis.stop()


# --- talking to a server -------------------------------------------------------------------


def envelope(raw: bytes | None) -> tuple[int, str] | None:
    """A cache value's (stamp, composition id or "-" for a tombstone), or None if unreadable."""
    head = _ENVELOPE.match(raw or b"")
    return None if head is None else (int(head.group(1)), head.group(2).decode())


class LiveApi:
    """Request helpers for one realm on one server, so tests read as the behaviour they check."""

    def __init__(self, http: httpx.AsyncClient, realm_id: str) -> None:
        self.http = http
        self.realm = realm_id
        self.base = f"/v1/realms/{realm_id}"

    def on(self, http: httpx.AsyncClient) -> LiveApi:
        """The same realm through another server."""
        return LiveApi(http, self.realm)

    async def create_realm(self) -> None:
        response = await self.http.post("/v1/realms", json={"id": self.realm})
        assert response.status_code == 201, response.text

    async def create(self, **fields: Any) -> dict[str, Any]:
        body = {"level": "realm", "title": "Title", "body": "Body", **fields}
        response = await self.http.post(f"{self.base}/directives", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def patch(self, node: dict[str, Any], **fields: Any) -> dict[str, Any]:
        response = await self.http.patch(
            f"{self.base}/directives/{node['id']}",
            json=fields,
            headers={"If-Match": f'"{node["revision"]}"'},
        )
        assert response.status_code == 200, response.text
        patched: dict[str, Any] = response.json()
        return patched

    async def prompt(self, agent: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.base}/agents/{agent}/prompt")
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == f'"{response.json()["composition_id"]}"'
        document: dict[str, Any] = response.json()
        return document

    async def revision(self) -> int:
        response = await self.http.get(self.base)
        assert response.status_code == 200, response.text
        revision: int = response.json()["revision"]
        return revision


@pytest.fixture
def realm_id() -> str:
    return new_realm_id()


async def metrics(http: httpx.AsyncClient) -> dict[str, float]:
    """The server's /metrics samples by name, labels included: `charter_watchers{kind="x"}`."""
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    samples = (line.rpartition(" ") for line in response.text.splitlines() if line[:1] != "#")
    return {name: float(value) for name, _, value in samples if name}


# --- server-sent events --------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    event: str | None
    id: str | None
    data: list[str]


async def sse_events(lines: AsyncIterator[str]) -> AsyncGenerator[Event, None]:
    """Events in arrival order; comments (heartbeats) are skipped."""
    fields: dict[str, list[str]] = {}
    async for line in lines:
        if not line:
            if fields:
                ids, names = fields.get("id", []), fields.get("event", [])
                yield Event(
                    names[-1] if names else None, ids[-1] if ids else None, fields.get("data", [])
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
