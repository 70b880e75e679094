"""`charter serve` as a real process on loopback, and stopping what a test started.

Every server runs in a process group of its own (`start_new_session`), so that stopping it
stops its granian workers too, even when the parent died first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

import httpx
import pytest

from charter.client import Charter, RetryPolicy
from tests.support.api import ADMIN_KEY
from tests.support.ports import free_port
from tests.support.sdk import FAST_RETRY

STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0


def charter_env(**settings: str) -> dict[str, str]:
    """This environment without any CHARTER_ variable of its own, plus `CHARTER_<NAME>`s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    return env | {f"CHARTER_{name.upper()}": value for name, value in settings.items()}


def stop_group(process: subprocess.Popen[bytes], *, first: signal.Signals) -> None:
    """Signal the process group we made, then SIGKILL it if it will not go."""
    if process.poll() is None:
        try:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, first)
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_SECONDS)
    # Workers left behind by a dead parent share its group: make sure they are gone too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group (a server's workers, Redis's snapshot child) and reap it."""
    os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_SECONDS
    while process.poll() is None:
        assert time.monotonic() < deadline, f"{process.pid} outlived SIGKILL"
        await asyncio.sleep(0.01)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class CharterServer:
    """`charter serve` on one port with one environment; it can stop and start again there.

    The admin key is the environment's CHARTER_BOOTSTRAP_KEY, if it has one. Output goes to
    `log`, appended across restarts. As a context manager it is stopped on the way out.
    """

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        *,
        port: int | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.env = env
        self.args = tuple(args)  # more `charter serve` arguments, e.g. ("--workers", "2")
        self.log = log
        self.port = port or free_port()
        self.key = env.get("CHARTER_BOOTSTRAP_KEY")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        """Everything the server has printed so far."""
        return self.log.read_text(errors="replace")

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process and return at once; `start` also waits until it is ready."""
        assert self.process is None or self.process.poll() is not None, "already running"
        command = [sys.executable, "-m", "charter", "serve", "--host", "127.0.0.1", *self.args]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def start(self) -> None:
        """Spawn, then wait (bounded) until alive (/healthz) and ready (/readyz): the database
        answers, and with Redis the invalidation subscription is up."""
        process = self.spawn()
        deadline = time.monotonic() + STARTUP_SECONDS
        with httpx.Client(base_url=self.url, timeout=1.0) as http:
            for path in ("/healthz", "/readyz"):
                while not self._answers(http, path):
                    if process.poll() is not None:
                        pytest.fail(f"charter serve exited early:\n{tail(self.log)}")
                    if time.monotonic() > deadline:
                        self.stop()
                        pytest.fail(
                            f"charter serve not {path} in {STARTUP_SECONDS} s:\n{tail(self.log)}"
                        )
                    time.sleep(0.05)

    async def astart(self) -> None:
        """`start` off the event loop, so that several servers can start at once."""
        await asyncio.to_thread(self.start)

    @staticmethod
    def _answers(http: httpx.Client, path: str) -> bool:
        try:
            response = http.get(path)
        except httpx.TransportError:
            return False
        return response.status_code == 200 and response.json().get("cache") != "resubscribing"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; a no-op if it is not running."""
        if self.process is not None:
            stop_group(self.process, first=signal.SIGTERM)

    async def kill(self) -> None:
        """SIGKILL, with no chance to finish anything."""
        assert self.process is not None
        await kill_group(self.process)

    def http(self, timeout: float = 10.0) -> httpx.AsyncClient:
        """An HTTP client that sends the admin key (if the server has one)."""
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    @classmethod
    def on_sqlite(cls, directory: Path, **settings: str) -> CharterServer:
        """A server on a SQLite file of its own in `directory`, with the tests' admin key."""
        database = f"sqlite+aiosqlite:///{directory / 'charter.db'}"
        env = charter_env(database_url=database, bootstrap_key=ADMIN_KEY, **settings)
        return cls(env, directory / "serve.log")

    def charter(self, realm: str | None = None, retry: RetryPolicy = FAST_RETRY) -> Charter:
        """The Python client, with the admin key."""
        assert self.key is not None, "this server has no bootstrap key"
        return Charter(self.url, self.key, realm=realm, retry=retry)

    def __enter__(self) -> CharterServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class StartServer(Protocol):
    """The `start_server` fixture: a started server on the test database and this Redis."""

    def __call__(
        self,
        redis_url: str = ...,
        extra_env: Mapping[str, str] | None = ...,
        args: Sequence[str] = ...,
    ) -> Awaitable[CharterServer]: ...
