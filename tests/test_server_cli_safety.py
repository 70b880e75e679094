"""`charter keys create` and `charter migrate`, run as real processes: no surprises, no tracebacks.

`keys create` run outside the server's folder used to make a new, empty `charter.db` and print
a key that the server did not know; `migrate` as a role that does not exist, or lacks
CREATEROLE, printed a 90-line traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import make_url

from charter.cli import exits

COMMAND_SECONDS = 60.0
SECRET = re.compile(r"chk_[A-Za-z0-9_-]{20,}")


def charter(
    *args: str, cwd: Path | None = None, **settings: str
) -> subprocess.CompletedProcess[str]:
    """`python -m charter ARGS` with only the given CHARTER_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    env |= {f"CHARTER_{name.upper()}": value for name, value in settings.items()}
    return subprocess.run(
        [sys.executable, "-m", "charter", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --- keys create --------------------------------------------------------------------------------


def test_keys_create_refuses_to_make_a_database_it_was_not_asked_for(tmp_path: Path) -> None:
    done = charter("keys", "create", "--role", "operator", cwd=tmp_path)  # the default URL
    assert done.returncode == exits.USAGE, done.stderr
    line = one_line(done.stderr)
    assert f"no database at {tmp_path / 'charter.db'}" in line
    assert "the default" in line
    assert "--create-database" in line
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []

    elsewhere = tmp_path / "server" / "charter.db"
    done = charter(
        "keys", "create", "--role", "operator", database_url=f"sqlite+aiosqlite:///{elsewhere}"
    )
    assert done.returncode == exits.USAGE
    assert f"no database at {elsewhere} (CHARTER_DATABASE_URL)" in one_line(done.stderr)
    assert not elsewhere.parent.exists()


def test_keys_create_names_the_database_it_writes_to(tmp_path: Path) -> None:
    done = charter("keys", "create", "--role", "operator", "--create-database", cwd=tmp_path)
    assert done.returncode == exits.OK, done.stderr
    assert SECRET.fullmatch(done.stdout.strip())
    assert f"in {tmp_path / 'charter.db'};" in done.stderr
    assert (tmp_path / "charter.db").is_file()
    # Now that it exists, no flag is needed, and the message names the same file.
    done = charter("keys", "create", "--role", "reader", cwd=tmp_path)
    assert done.returncode == exits.OK, done.stderr
    assert "created reader key key_" in done.stderr
    assert f"in {tmp_path / 'charter.db'};" in done.stderr


def test_keys_create_names_a_postgres_database_without_its_password(
    postgres_urls: tuple[str, str],
) -> None:
    _, app_url = postgres_urls
    url = make_url(app_url).set(password="s3cret-in-the-url")
    done = charter("keys", "create", "--role", "reader", database_url=url.render_as_string(False))
    # Trust auth accepts any password, so the key is minted; the message must not show it.
    assert done.returncode == exits.OK, done.stderr
    assert "s3cret-in-the-url" not in done.stderr
    assert f"@127.0.0.1:5432/{url.database}" in done.stderr


def test_keys_create_against_a_database_that_refuses_is_one_line(tmp_path: Path) -> None:
    nobody = f"postgresql+asyncpg://charter_t_nobody_{uuid.uuid4().hex[:8]}@127.0.0.1:5432/x"
    done = charter("keys", "create", "--role", "reader", database_url=nobody)
    assert done.returncode == exits.AUTH, done.stderr
    assert "does not exist" in one_line(done.stderr)


# --- migrate ------------------------------------------------------------------------------------


def test_migrate_as_a_role_that_does_not_exist_is_one_line_and_exit_6(
    postgres_urls: tuple[str, str],
) -> None:
    admin_url, app_url = postgres_urls
    role = f"charter_t_nobody_{uuid.uuid4().hex[:8]}"
    missing = make_url(admin_url).set(username=role).render_as_string(False)
    done = charter("migrate", admin_database_url=missing, database_url=app_url)
    assert done.returncode == exits.AUTH, done.stderr
    line = one_line(done.stderr)
    assert line.startswith("charter: migrate: ")
    assert f'role "{role}" does not exist' in line


def test_migrate_as_an_owner_without_createrole_says_so_in_one_line(
    postgres_urls: tuple[str, str],
) -> None:
    _, app_url = postgres_urls
    # charter_app has no CREATEROLE; the schema is already at head, so the upgrade does
    # nothing and the first thing it is refused is creating the (new) app role.
    lacking = make_url(app_url).render_as_string(False)
    new_app = make_url(app_url).set(username=f"charter_t_new_{uuid.uuid4().hex[:8]}")
    done = charter(
        "migrate", admin_database_url=lacking, database_url=new_app.render_as_string(False)
    )
    assert done.returncode == exits.AUTH, done.stderr
    line = one_line(done.stderr)
    assert "permission denied to create role" in line
    assert "needs CREATEROLE" in line


def test_migrate_with_no_database_to_reach_is_one_line_and_exit_7() -> None:
    url = "postgresql+asyncpg://charter_owner@127.0.0.1:9/charter"
    done = charter("migrate", database_url=url)
    assert done.returncode == exits.UNAVAILABLE, done.stderr
    assert "cannot reach postgresql+asyncpg://charter_owner@127.0.0.1:9/charter" in one_line(
        done.stderr
    )


def test_migrate_of_a_sqlite_file_it_cannot_open_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'charter.db'}"
    done = charter("migrate", database_url=url)
    assert done.returncode == exits.ERROR, done.stderr
    assert "unable to open database file" in one_line(done.stderr)


@pytest.mark.parametrize("command", ["migrate", "keys"])
def test_the_commands_succeed_as_before(command: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'charter.db'}"
    if command == "migrate":
        done = charter("migrate", database_url=url)
        assert done.returncode == exits.OK, done.stderr
        assert done.stdout.strip() == "schema is at head"
    else:
        done = charter("keys", "create", "--role", "admin", "--create-database", database_url=url)
        assert done.returncode == exits.OK, done.stderr
        assert SECRET.fullmatch(done.stdout.strip())
