"""CHARTER_READ_REPLICA_URLS is read as a list; anything but PostgreSQL URLs is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.db.session import Database
from charter.settings import Settings

PRIMARY = "postgresql+asyncpg://charter_app@127.0.0.1:5432/charter"


def test_a_comma_separated_list_with_blanks_dropped() -> None:
    env = {
        "CHARTER_DATABASE_URL": PRIMARY,
        "CHARTER_READ_REPLICA_URLS": " postgresql+asyncpg://a/c, ,postgresql+asyncpg://b/c,",
    }
    settings = Settings.from_env(env)
    assert settings.read_replica_urls == ("postgresql+asyncpg://a/c", "postgresql+asyncpg://b/c")
    assert Settings.from_env({"CHARTER_DATABASE_URL": PRIMARY}).read_replica_urls == ()


@pytest.mark.parametrize(
    ("primary", "replicas"),
    [
        (PRIMARY, "sqlite+aiosqlite:///./copy.db"),
        (PRIMARY, "redis://127.0.0.1:6379/0"),
    ],
)
def test_replicas_that_cannot_be_are_refused_at_start(primary: str, replicas: str) -> None:
    env = {"CHARTER_DATABASE_URL": primary, "CHARTER_READ_REPLICA_URLS": replicas}
    with pytest.raises(ValueError, match="CHARTER_READ_REPLICA_URLS"):
        Settings.from_env(env)


async def test_beside_sqlite_replicas_are_unused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'charter.db'}"
    settings = Settings(database_url=url, read_replica_urls=("postgresql+asyncpg://a/c",))
    db = Database.connect(settings.database_url, replica_urls=settings.read_replica_urls)
    assert db.replicas == []
    await db.dispose()
