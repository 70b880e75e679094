"""The `charter` command itself, run as a real process: keys create, first start, preflight."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import AsyncTestClient

from charter.app import create_app
from charter.settings import Settings

COMMAND_SECONDS = 60.0
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0
SECRET = re.compile(r"chk_[A-Za-z0-9_-]{20,}")


def _env(**charter: str) -> dict[str, str]:
    """This environment without any CHARTER_ setting of its own, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    return env | {f"CHARTER_{name.upper()}": value for name, value in charter.items()}


def _charter(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "charter", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )


@pytest.fixture
def sqlite_file_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'charter.db'}"


# --- charter keys create --------------------------------------------------------------------


async def test_keys_create_prints_a_secret_that_authenticates(sqlite_file_url: str) -> None:
    done = _charter(
        "keys", "create", "--role", "operator", "--realm", "r1", "--name", "ci",
        "--create-database", env=_env(database_url=sqlite_file_url),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert SECRET.fullmatch(secret), done.stdout
    assert secret not in done.stderr  # printed once, on stdout, so `$(charter keys create …)` works
    app = create_app(Settings(database_url=sqlite_file_url))
    async with AsyncTestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {secret}"
        listed = await client.get("/v1/realms")
        assert listed.status_code == 200, listed.text
        refused = await client.post("/v1/realms", json={"id": "r2"})
        assert refused.status_code == 403, refused.text
        keys = await client.get("/v1/keys")
        assert keys.status_code == 403, keys.text
        unknown = await client.get("/v1/realms", headers={"Authorization": "Bearer chk_nope"})
        assert unknown.status_code == 401, unknown.text


def test_an_agent_key_without_agent_id_fails_with_exit_2(sqlite_file_url: str) -> None:
    done = _charter(
        "keys", "create", "--role", "agent", "--create-database",
        env=_env(database_url=sqlite_file_url),
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "agent_id" in done.stderr
    assert done.stdout == ""


# --- charter serve ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's own process group (its workers too), then SIGKILL if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workers a dead parent left behind


class Served:
    def __init__(self, process: subprocess.Popen[bytes], log: Path, port: int) -> None:
        self.process = process
        self.log = log
        self.base_url = f"http://127.0.0.1:{port}"

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def _serving(env: dict[str, str], log: Path) -> Iterator[Served]:
    """`charter serve` on a free port, stdout and stderr to `log`; stopped on the way out."""
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "charter", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Served(process, log, port)
    finally:
        _stop(process)


async def _wait_healthy(served: Served) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=served.base_url, timeout=1.0) as http:
        while time.monotonic() < deadline:
            if served.process.poll() is not None:
                pytest.fail(f"charter serve exited early:\n{served.output}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    pytest.fail(f"charter serve not healthy within {STARTUP_SECONDS} s:\n{served.output}")


async def test_first_start_prints_an_admin_key_once_and_it_works(
    sqlite_file_url: str, tmp_path: Path
) -> None:
    env = _env(database_url=sqlite_file_url)
    with _serving(env, tmp_path / "first.log") as served:
        await _wait_healthy(served)
        secrets = SECRET.findall(served.output)
        assert len(secrets) == 1, served.output
        headers = {"Authorization": f"Bearer {secrets[0]}"}
        async with httpx.AsyncClient(base_url=served.base_url, timeout=10.0) as http:
            listed = await http.get("/v1/realms", headers=headers)
            assert listed.status_code == 200, listed.text
            created = await http.post("/v1/realms", json={"id": "first"}, headers=headers)
            assert created.status_code == 201, created.text
    with _serving(env, tmp_path / "second.log") as served:
        await _wait_healthy(served)
        assert SECRET.search(served.output) is None, served.output


async def test_no_first_key_is_made_when_a_bootstrap_key_is_set(
    sqlite_file_url: str, tmp_path: Path
) -> None:
    bootstrap = "chk_bootstrap-for-the-cli-test"
    env = _env(database_url=sqlite_file_url, bootstrap_key=bootstrap)
    with _serving(env, tmp_path / "bootstrap.log") as served:
        await _wait_healthy(served)
        assert "admin key was created" not in served.output
        async with httpx.AsyncClient(base_url=served.base_url, timeout=10.0) as http:
            listed = await http.get("/v1/realms", headers={"Authorization": f"Bearer {bootstrap}"})
            assert listed.status_code == 200, listed.text


# --- PostgreSQL preflight ------------------------------------------------------------------


def test_serve_as_the_schema_owner_refuses_to_start(postgres_urls: tuple[str, str]) -> None:
    owner_url, _ = postgres_urls
    env = _env(database_url=owner_url, bootstrap_key="chk_preflight-test")
    port = str(_free_port())
    done = _charter("serve", "--host", "127.0.0.1", "--port", port, env=env)
    assert done.returncode != 0, done.stderr
    assert "refusing to start" in done.stderr
    assert "charter migrate" in done.stderr
    assert "app role" in done.stderr
    assert "owns" in done.stderr


async def test_the_rls_bypass_override_starts_loudly(
    postgres_urls: tuple[str, str], tmp_path: Path
) -> None:
    owner_url, _ = postgres_urls
    env = _env(database_url=owner_url, bootstrap_key="chk_preflight-test", allow_rls_bypass="1")
    with _serving(env, tmp_path / "bypass.log") as served:
        await _wait_healthy(served)
        assert "WARNING: CHARTER_ALLOW_RLS_BYPASS=1" in served.output
        assert "charter migrate" in served.output
