"""`charter serve` where the server side is not installed says how to install it; the wheel
installed alone is the client and the CLI, and works as one."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import httpx
import pytest

import charter
from charter.__main__ import MCP_EXTRA_HINT, SERVER_EXTRA_HINT, main
from tests.installed import SERVER_MODULES, Venv, project_version, serving, wheel


@pytest.mark.parametrize("argv", [["serve"], ["migrate"], ["keys", "create", "--role", "admin"]])
def test_a_server_command_without_the_server_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, "charter.server_cli", None)  # as if not installed
    # `from charter import server_cli` looks at the package's attribute first: once another
    # test imported the module, only this keeps the real `serve` from running here.
    monkeypatch.delattr(charter, "server_cli", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert SERVER_EXTRA_HINT in str(exited.value.code)


def test_charter_mcp_without_the_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # as if the MCP SDK were not installed
    monkeypatch.setitem(sys.modules, "charter.mcp.stdio", None)
    monkeypatch.delattr(charter, "mcp", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["mcp", "--realm", "ship", "--agent", "coder-1"])
    assert MCP_EXTRA_HINT in str(exited.value.code)


# --- the wheel installed alone, in a fresh venv: the client and the CLI, no server ----------

CLIENT_INSTALL_LIMIT_BYTES = 30 * 1000 * 1000  # docs/install.md gives the measured size


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    built = wheel(tmp_path_factory)
    return Venv.make(tmp_path_factory.mktemp("client-venv") / "venv", built)


@pytest.mark.packaging
def test_the_client_install_has_no_server_and_stays_small(client_venv: Venv) -> None:
    probe = "import importlib.util as u, sys; print(*(m for m in sys.argv[1:] if u.find_spec(m)))"
    found = client_venv.run("python", "-c", probe, *SERVER_MODULES)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == []
    size = client_venv.site_packages_bytes()
    assert size < CLIENT_INSTALL_LIMIT_BYTES, f"{size / 1e6:.1f} MB"


@pytest.mark.packaging
def test_help_and_version_work_without_the_server(client_venv: Venv) -> None:
    helped = client_venv.run("charter", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "serve" in helped.stdout
    assert "tree" in helped.stdout
    versioned = client_venv.run("charter", "--version")
    assert versioned.returncode == 0, versioned.stderr
    assert versioned.stdout.strip() == f"charter {project_version()}"


@pytest.mark.packaging
@pytest.mark.parametrize("argv", [["serve"], ["migrate"], ["keys", "create", "--role", "admin"]])
def test_a_server_command_in_a_client_install_prints_the_hint(
    client_venv: Venv, argv: list[str]
) -> None:
    done = client_venv.run("charter", *argv)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert SERVER_EXTRA_HINT in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.packaging
def test_the_client_install_reads_a_running_server(client_venv: Venv, tmp_path: Path) -> None:
    """`charter tree` from the client-only venv against a server (this checkout's)."""
    key = f"chk_{secrets.token_urlsafe(24)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")} | {
        "CHARTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'charter.db'}",
        "CHARTER_BOOTSTRAP_KEY": key,
    }
    with serving([sys.executable, "-m", "charter"], env, tmp_path) as served:
        served.wait_healthy()
        with httpx.Client(base_url=served.base_url, timeout=10.0) as http:
            http.headers["Authorization"] = f"Bearer {key}"
            assert http.post("/v1/realms", json={"id": "fleet"}).status_code == 201
            root = http.post(
                "/v1/realms/fleet/directives",
                json={"level": "realm", "title": "Client only", "body": "No server here."},
            )
            assert root.status_code == 201, root.text
        done = client_venv.run(
            "charter", "tree", "fleet", env=client_venv.env(url=served.base_url, key=key)
        )
    assert done.returncode == 0, done.stderr
    assert "Client only" in done.stdout, done.stdout
