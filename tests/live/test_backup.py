"""`charter backup`: a live server's SQLite database copied while it writes, then restored.

The copy must be one commit's database: every write acknowledged before the backup started is
in it, none acknowledged after it ended, and its event feed is gapless. Restored as
docs/backup.md says (the file put in place of charter.db), a server starts on it, serves what
was backed up, and takes new writes.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.sqlite_server import CHARTER, SqliteServer, clean_env, sqlite_server

REALM = "backed-up"
BACKUP_SECONDS = 60.0


class Writer(threading.Thread):
    """Creates directives one after another until stopped; records the ids acknowledged."""

    def __init__(self, server: SqliteServer) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.server.key}"}
        try:
            with httpx.Client(base_url=self.server.url, headers=headers, timeout=10.0) as http:
                while not self.stop.is_set():
                    body = {"level": "realm", "title": f"n{len(self.acked)}", "body": "text"}
                    response = http.post(f"/v1/realms/{REALM}/directives", json=body)
                    assert response.status_code == 201, response.text
                    self.acked.append(response.json()["id"])
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SqliteServer]:
    folder = tmp_path / "server"
    folder.mkdir()
    with sqlite_server(folder) as live:
        yield live


def backup(server: SqliteServer, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHARTER), "backup", str(target)],
        cwd=server.folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=BACKUP_SECONDS,
        check=False,
    )


def test_backup_while_writing_then_restore(server: SqliteServer, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {server.key}"}
    created = httpx.post(f"{server.url}/v1/realms", json={"id": REALM}, headers=headers)
    assert created.status_code == 201, created.text
    writer = Writer(server)
    writer.start()
    try:
        while len(writer.acked) < 20 and writer.error is None and writer.is_alive():
            writer.stop.wait(0.01)
        before = len(writer.acked)
        copies = []
        for number in range(3):  # each one taken with writes in flight
            target = tmp_path / f"copy-{number}.db"
            done = backup(server, target)
            assert done.returncode == 0, done.stderr
            assert f"to {target}" in done.stdout
            copies.append(target)
        after = len(writer.acked)
        writer.stop.wait(0.2)
    finally:
        writer.stop.set()
        writer.join(30)
    assert writer.error is None, writer.error
    assert after > before, "nothing was written while the backups ran"

    with sqlite3.connect(copies[0]) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (count,) = copy.execute("SELECT count(*) FROM directives").fetchone()
        (revision,) = copy.execute("SELECT revision FROM realms WHERE id = ?", (REALM,)).fetchone()
        seqs = [s for (s,) in copy.execute("SELECT seq FROM events WHERE realm_id = ?", (REALM,))]
    assert before <= count <= after
    assert sorted(seqs) == list(range(1, revision + 1)), "the copy's event feed has a gap"

    # Restore the last copy as docs/backup.md says: in place of charter.db, then start.
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copyfile(copies[-1], restored / "charter.db")
    with (
        sqlite_server(restored, key=server.key) as again,
        httpx.Client(base_url=again.url, headers=headers, timeout=10.0) as http,
    ):
        for directive_id in writer.acked[:before]:
            got = http.get(f"/v1/realms/{REALM}/directives/{directive_id}")
            assert got.status_code == 200, got.text
        realm = http.get(f"/v1/realms/{REALM}").json()
        events = http.get(f"/v1/realms/{REALM}/events", params={"after": 0, "limit": 500})
        assert events.status_code == 200, events.text
        new = http.post(
            f"/v1/realms/{REALM}/directives",
            json={"level": "realm", "title": "after the restore", "body": "text"},
        )
        assert new.status_code == 201, new.text
        assert http.get(f"/v1/realms/{REALM}").json()["revision"] == realm["revision"] + 1
    assert "admin key was created" not in again.log.read_text(), "the restore lost the keys"


def test_backup_refusals(tmp_path: Path) -> None:
    """Nothing is created or overwritten when the backup cannot be made as asked.

    Subprocesses, not `main()`: importing the server commands into the test process would
    defeat tests/test_server_extra.py, which hides them to play a client-only install.
    """

    def backup_in(folder: Path, *args: str, env: dict[str, str] | None = None) -> int:
        done = subprocess.run(
            [str(CHARTER), "backup", *args],
            cwd=folder,
            env=env or clean_env(),
            capture_output=True,
            text=True,
            timeout=BACKUP_SECONDS,
            check=False,
        )
        assert "Traceback" not in done.stderr
        assert done.returncode == 0 or done.stderr.startswith("charter backup"), done.stderr
        return done.returncode

    assert backup_in(tmp_path, "copy.db") == 2  # no ./charter.db
    assert sorted(p.name for p in tmp_path.iterdir()) == []

    with sqlite3.connect(tmp_path / "charter.db") as db:
        db.execute("CREATE TABLE t (x)")
    (tmp_path / "copy.db").write_text("keep me")
    assert backup_in(tmp_path, "copy.db") == 2
    assert (tmp_path / "copy.db").read_text() == "keep me"
    assert backup_in(tmp_path, "charter.db", "--force") == 2  # onto itself
    assert backup_in(tmp_path, "no/such/dir/copy.db") == 2
    assert backup_in(tmp_path, "copy.db", "--force") == 0
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["charter.db", "copy.db"]

    postgres = clean_env() | {"CHARTER_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1/x"}
    assert backup_in(tmp_path, "pg.db", env=postgres) == 2
    assert not (tmp_path / "pg.db").exists()
