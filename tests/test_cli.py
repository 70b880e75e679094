"""The `charter` command itself, run as a real process: keys create, first start, preflight."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from litestar.testing import AsyncTestClient

from charter.app import create_app
from charter.settings import Settings
from tests.support.ports import free_port
from tests.support.servers import CharterServer, charter_env

COMMAND_SECONDS = 60.0
SECRET = re.compile(r"chk_[A-Za-z0-9_-]{20,}")


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
        "--create-database", env=charter_env(database_url=sqlite_file_url),
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
        env=charter_env(database_url=sqlite_file_url),
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "agent_id" in done.stderr
    assert done.stdout == ""


# --- charter serve ----------------------------------------------------------------------------


async def test_first_start_prints_an_admin_key_once_and_it_works(
    sqlite_file_url: str, tmp_path: Path
) -> None:
    env = charter_env(database_url=sqlite_file_url)
    with CharterServer(env, tmp_path / "first.log") as served:
        await served.astart()
        secrets = SECRET.findall(served.output)
        assert len(secrets) == 1, served.output
        headers = {"Authorization": f"Bearer {secrets[0]}"}
        async with httpx.AsyncClient(base_url=served.url, timeout=10.0) as http:
            listed = await http.get("/v1/realms", headers=headers)
            assert listed.status_code == 200, listed.text
            created = await http.post("/v1/realms", json={"id": "first"}, headers=headers)
            assert created.status_code == 201, created.text
    with CharterServer(env, tmp_path / "second.log") as served:
        await served.astart()
        assert SECRET.search(served.output) is None, served.output


async def test_no_first_key_is_made_when_a_bootstrap_key_is_set(
    sqlite_file_url: str, tmp_path: Path
) -> None:
    bootstrap = "chk_bootstrap-for-the-cli-test"
    env = charter_env(database_url=sqlite_file_url, bootstrap_key=bootstrap)
    with CharterServer(env, tmp_path / "bootstrap.log") as served:
        await served.astart()
        assert "admin key was created" not in served.output
        async with httpx.AsyncClient(base_url=served.url, timeout=10.0) as http:
            listed = await http.get("/v1/realms", headers={"Authorization": f"Bearer {bootstrap}"})
            assert listed.status_code == 200, listed.text


# --- PostgreSQL preflight ------------------------------------------------------------------


def test_serve_as_the_schema_owner_refuses_to_start(postgres_urls: tuple[str, str]) -> None:
    owner_url, _ = postgres_urls
    env = charter_env(database_url=owner_url, bootstrap_key="chk_preflight-test")
    port = str(free_port())
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
    env = charter_env(
        database_url=owner_url, bootstrap_key="chk_preflight-test", allow_rls_bypass="1"
    )
    with CharterServer(env, tmp_path / "bypass.log") as served:
        await served.astart()
        assert "WARNING: CHARTER_ALLOW_RLS_BYPASS=1" in served.output
        assert "charter migrate" in served.output
