"""The wheel, as a user installs it: built from this checkout, installed with the `server`
extra into a fresh venv outside the checkout, it serves on SQLite (issue 12: the migrations
were missing from the installed package, so `charter serve` crashed)."""

from __future__ import annotations

import re
import secrets
import zipfile
from email.parser import Parser
from pathlib import Path

import httpx
import pytest

from tests.installed import ROOT, SERVER_MODULES, Venv, project_version, serving, wheel

pytestmark = pytest.mark.packaging


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wheel(tmp_path_factory)


@pytest.fixture(scope="module")
def server_venv(tmp_path_factory: pytest.TempPathFactory, built: Path) -> Venv:
    return Venv.make(tmp_path_factory.mktemp("server-venv") / "venv", built, "server")


def test_the_wheel_holds_every_file_of_the_package(built: Path) -> None:
    source = ROOT / "src" / "charter"
    expected = {
        "charter/" + path.relative_to(source).as_posix()
        for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    with zipfile.ZipFile(built) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("charter/")}
    assert expected - shipped == set()
    migrations = {name for name in shipped if name.startswith("charter/migrations/")}
    assert "charter/migrations/env.py" in migrations
    assert "charter/migrations/script.py.mako" in migrations  # not a .py: package data
    versions = sorted((source / "migrations" / "versions").glob("*.py"))
    assert versions, "no migration found in the source tree"
    assert {f"charter/migrations/versions/{path.name}" for path in versions} <= migrations


def _requirements(built: Path) -> dict[str, set[str]]:
    """The wheel's Requires-Dist names by extra ("" for the base package)."""
    with zipfile.ZipFile(built) as archive:
        (name,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(archive.read(name).decode())
    by_extra: dict[str, set[str]] = {}
    for requirement in meta.get_all("Requires-Dist") or []:
        named = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
        assert named, requirement
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
        by_extra.setdefault(extra[1] if extra else "", set()).add(named[1].lower())
    return by_extra


def test_the_server_dependencies_are_the_server_extra(built: Path) -> None:
    requirements = _requirements(built)
    assert requirements[""] == {"msgspec", "httpx", "pyyaml", "stamina", "httpx-sse"}
    server = requirements["server"]
    assert {"litestar", "sqlalchemy", "alembic", "granian", "aiosqlite", "asyncpg"} <= server
    assert not (server | requirements.get("dev", set())) & requirements[""]


def test_the_installed_package_is_the_wheel_not_the_checkout(server_venv: Venv) -> None:
    done = server_venv.run("python", "-c", "import charter; print(charter.__file__)")
    assert done.returncode == 0, done.stderr
    location = Path(done.stdout.strip()).resolve()
    assert location.is_relative_to(server_venv.site_packages.resolve()), location
    assert not location.is_relative_to(ROOT), location
    found = server_venv.run("python", "-c", "import " + ", ".join(SERVER_MODULES))
    assert found.returncode == 0, found.stderr  # the extra brought the server's dependencies


def test_charter_version_is_the_project_version(server_venv: Venv) -> None:
    done = server_venv.run("charter", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"charter {project_version()}"


def test_the_installed_server_migrates_and_serves_on_sqlite(
    server_venv: Venv, tmp_path: Path
) -> None:
    key = f"chk_{secrets.token_urlsafe(24)}"
    database = tmp_path / "charter.db"
    env = server_venv.env(database_url=f"sqlite+aiosqlite:///{database}", bootstrap_key=key)
    with serving([str(server_venv.path / "bin" / "charter")], env, tmp_path) as served:
        assert served.wait_healthy().status_code == 200
        with httpx.Client(base_url=served.base_url, timeout=10.0) as http:
            http.headers["Authorization"] = f"Bearer {key}"
            made = http.post("/v1/realms", json={"id": "wheel"})
            assert made.status_code == 201, made.text  # the schema is there: migrated
            directive = http.post(
                "/v1/realms/wheel/directives",
                json={"level": "realm", "title": "Installed", "body": "From the wheel."},
            )
            assert directive.status_code == 201, directive.text
    assert database.is_file()
    assert "Traceback" not in served.output, served.output
